import { invalid } from './validation.js';
import { assertInstanceId } from './mac.js';

/**
 * Names of the host objects this package creates. Everything starts with the deployment's
 * prefix (2-5 chars, [a-z][a-z0-9]*) so the reconciler and the tests find exactly what is ours.
 *   tap     <prefix>t<9 hex of id>    e.g. mct0a1b2c3d4  
 *   VPC     <prefix>v<9 hex of id>    e.g. mcv0a1b2c3d4   (one bridge per VPC)
 *   nft     <prefix>_vpc              e.g. mc_vpc         (NAT, Elastic IPs, VPC isolation)
 *   address label <uplink>:<prefix>   e.g. eth0:mc        (Elastic IPs held on the uplink)
 */

/** Linux IFNAMSIZ is 16 including the NUL. */
export const MAX_IFNAME_LENGTH = 15;
const OWN_LINK_RE = /^[a-z0-9]{1,15}$/;
/** Names of links we do not own but reference (the uplink): what the kernel accepts, minus oddities. */
const FOREIGN_LINK_RE = /^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,14}$/;
export const NAME_PREFIX = /^[a-z][a-z0-9]{1,4}$/;
const NFT_TABLE_RE = /^[A-Za-z][A-Za-z0-9_]{0,63}$/;

export function assertNamePrefix(prefix: string): string {
  if (typeof prefix !== 'string' || !NAME_PREFIX.test(prefix)) {
    throw invalid(
      'InvalidName',
      `name prefix must be 2-5 chars [a-z][a-z0-9]*, got ${JSON.stringify(prefix)}`,
    );
  }
  return prefix;
}

/** A bridge or tap name minicloud creates: 1-15 chars of [a-z0-9]. */
export function assertOwnLinkName(name: string, what = 'interface name'): string {
  if (typeof name !== 'string' || !OWN_LINK_RE.test(name)) {
    throw invalid(
      'InvalidName',
      `${what} must be 1-15 chars [a-z0-9], got ${JSON.stringify(name)}`,
    );
  }
  return name;
}

export function assertBridgeName(name: string): string {
  return assertOwnLinkName(name, 'bridge name');
}

export function assertTapName(name: string): string {
  return assertOwnLinkName(name, 'tap name');
}

/** An existing interface we only reference (e.g. the uplink 'eth0', 'enp3s0', 'bond0.12'). */
export function assertForeignLinkName(name: string, what = 'interface name'): string {
  if (typeof name !== 'string' || !FOREIGN_LINK_RE.test(name) || name === '.' || name === '..') {
    throw invalid(
      'InvalidName',
      `${what} is not a valid Linux interface name: ${JSON.stringify(name)}`,
    );
  }
  return name;
}

export function assertNftTableName(name: string): string {
  if (typeof name !== 'string' || !NFT_TABLE_RE.test(name)) {
    throw invalid(
      'InvalidName',
      `nft table name must match ${NFT_TABLE_RE}, got ${JSON.stringify(name)}`,
    );
  }
  return name;
}

/** prefix + 't' + the first 9 hex digits of the instance id (at most 15 characters). */
export function tapName(prefix: string, instanceId: string): string {
  assertNamePrefix(prefix);
  assertInstanceId(instanceId);
  return `${prefix}t${instanceId.slice(2, 11)}`;
}

const VPC_ID_RE = /^vpc-[0-9a-f]{17}$/;

export function assertVpcId(vpcId: string): string {
  if (typeof vpcId !== 'string' || !VPC_ID_RE.test(vpcId)) {
    throw invalid('InvalidName', `invalid VPC id ${JSON.stringify(vpcId)} (vpc- + 17 hex)`);
  }
  return vpcId;
}

/**
 * The bridge of a VPC: prefix + 'v' + the first 9 hex digits of the VPC id (at most 15
 * characters, like taps). 36 bits: the controller keeps them unique (a clash between two VPCs
 * of one deployment is about 1 in 10^8 at 1000 VPCs; refuse or re-roll the id on a clash).
 */
export function vpcBridgeName(prefix: string, vpcId: string): string {
  assertNamePrefix(prefix);
  return `${prefix}v${vpcBridgeKey(vpcId)}`;
}

/** The 9 hex digits of a VPC id its bridge is named after (kept unique per deployment). */
export function vpcBridgeKey(vpcId: string): string {
  assertVpcId(vpcId);
  return vpcId.slice(4, 13);
}

/** The nft table (family ip) holding VPC isolation, outbound NAT and Elastic IP 1:1 NAT. */
export function vpcTableName(prefix: string): string {
  return `${assertNamePrefix(prefix)}_vpc`;
}

/**
 * The label of Elastic IP addresses held on the uplink: `<uplink>:<prefix>` (the kernel wants
 * labels to start with the device name and to fit in 15 characters). null when it does not fit
 * (a very long uplink name): then ownership is decided by the address pool alone.
 */
export function elasticIpLabel(uplink: string, prefix: string): string | null {
  assertForeignLinkName(uplink, 'uplink');
  assertNamePrefix(prefix);
  const label = `${uplink}:${prefix}`;
  return label.length <= MAX_IFNAME_LENGTH ? label : null;
}

/** The libvirt domain of an instance: `<prefix>-<instance id>`. */
export function domainName(prefix: string, instanceId: string): string {
  return `${assertNamePrefix(prefix)}-${assertInstanceId(instanceId)}`;
}

export function instanceIdFromDomainName(prefix: string, name: string): string | null {
  const m = new RegExp(`^${assertNamePrefix(prefix)}-(i-[0-9a-f]{17})$`).exec(name);
  return m?.[1] ?? null;
}

const HOSTNAME_RE = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** One DNS label, lower case: what a guest's hostname may be. */
export function assertHostname(hostname: string): string {
  // Not digits only either: such a name reads as an address (`ping 1234` goes to 0.0.4.210).
  if (typeof hostname !== 'string' || !HOSTNAME_RE.test(hostname) || /^[0-9]+$/.test(hostname)) {
    throw invalid(
      'InvalidHostname',
      `hostname must be one DNS label (a-z, 0-9, '-', at most 63 chars), got ${JSON.stringify(hostname)}`,
    );
  }
  return hostname;
}

/** A guest's hostname, as EC2 names it from its private address: ip-10-11-0-5. */
export function hostnameFor(instanceId: string, privateIp: string | null | undefined): string {
  return privateIp ? `ip-${privateIp.replaceAll('.', '-')}` : instanceId;
}
