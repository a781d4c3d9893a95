import { CloudError, errors, parseCidr } from '@minicloud/domain';
import type { SecurityGroupRuleInputType } from '@minicloud/contracts';

/** The pure rules of security-group permissions, with EC2's error codes. */

export const MAX_GROUPS_PER_INSTANCE = 5;
export const MAX_RULES_PER_DIRECTION = 60;

export type Protocol = 'tcp' | 'udp' | 'icmp' | '-1';

export interface NormalizedRule {
  ipProtocol: Protocol;
  /** tcp/udp: first port; icmp: type (-1 = any); -1: null. */
  fromPort: number | null;
  /** tcp/udp: last port; icmp: code (-1 = any); -1: null. */
  toPort: number | null;
  cidrIpv4: string | null;
  referencedGroupId: string | null;
  description: string | null;
  /** The rule's meaning in one string (duplicates have the same key). */
  ruleKey: string;
}

// A Map, not an object literal: a caller's 'constructor' or '__proto__' is just an unknown name.
const PROTOCOLS: ReadonlyMap<string, Protocol> = new Map([
  ['tcp', 'tcp'],
  ['6', 'tcp'],
  ['udp', 'udp'],
  ['17', 'udp'],
  ['icmp', 'icmp'],
  ['1', 'icmp'],
  ['-1', '-1'],
  ['all', '-1'],
]);

function inRange(v: number | undefined, lo: number, hi: number): boolean {
  return v === undefined || (Number.isInteger(v) && v >= lo && v <= hi);
}

export function normalizeRule(input: SecurityGroupRuleInputType): NormalizedRule {
  const ipProtocol = PROTOCOLS.get(input.ipProtocol.toLowerCase());
  if (!ipProtocol) {
    throw errors.invalidParameter(
      `Invalid value '${input.ipProtocol}' for ipProtocol: use tcp, udp, icmp or -1 (all).`,
    );
  }
  let fromPort: number | null = null;
  let toPort: number | null = null;
  if (ipProtocol === 'tcp' || ipProtocol === 'udp') {
    if (input.fromPort === undefined || input.toPort === undefined) {
      throw new CloudError('MissingParameter', `${ipProtocol} rules need fromPort and toPort.`);
    }
    if (!inRange(input.fromPort, 0, 65535) || !inRange(input.toPort, 0, 65535)) {
      throw errors.invalidParameter(
        `Ports must be between 0 and 65535 (got ${input.fromPort}-${input.toPort}).`,
      );
    }
    if (input.fromPort > input.toPort) {
      throw errors.invalidParameter(
        `fromPort (${input.fromPort}) must not be greater than toPort (${input.toPort}).`,
      );
    }
    fromPort = input.fromPort;
    toPort = input.toPort;
  } else if (ipProtocol === 'icmp') {
    // EC2: fromPort is the ICMP type, toPort the code; -1 means any.
    const type = input.fromPort ?? -1;
    const code = input.toPort ?? -1;
    if (!inRange(type, -1, 255) || !inRange(code, -1, 255)) {
      throw errors.invalidParameter(`ICMP type and code must be -1 to 255 (got ${type}/${code}).`);
    }
    if (type === -1 && code !== -1) {
      throw errors.invalidParameter('An ICMP code needs an ICMP type (fromPort).');
    }
    fromPort = type;
    toPort = code;
  } else if ((input.fromPort ?? -1) !== -1 || (input.toPort ?? -1) !== -1) {
    throw errors.invalidParameter('Rules for all protocols (-1) cover all ports: omit the ports.');
  }

  const hasCidr = input.cidrIpv4 !== undefined;
  const hasGroup = input.referencedGroupId !== undefined;
  if (hasCidr === hasGroup) {
    throw new CloudError(
      hasCidr ? 'InvalidParameterCombination' : 'MissingParameter',
      'A rule needs exactly one of cidrIpv4 and referencedGroupId.',
    );
  }
  let cidrIpv4: string | null = null;
  if (hasCidr) {
    try {
      cidrIpv4 = parseCidr(input.cidrIpv4!).cidr;
    } catch {
      throw errors.invalidParameter(
        `CIDR block ${input.cidrIpv4} is malformed (a.b.c.d/n with no host bits set).`,
      );
    }
  }
  const referencedGroupId = input.referencedGroupId ?? null;
  const peer = cidrIpv4 ?? `sg:${referencedGroupId}`;
  return {
    ipProtocol,
    fromPort,
    toPort,
    cidrIpv4,
    referencedGroupId,
    description: input.description ?? null,
    ruleKey: `${ipProtocol}|${fromPort ?? ''}|${toPort ?? ''}|${peer}`,
  };
}

/** Group names as EC2 allows them: 1-255 printable ASCII, not `sg-...`, not `default`. */
export function checkGroupName(name: string): string {
  if (!/^[\x20-\x7e]{1,255}$/.test(name)) {
    throw errors.invalidParameter('groupName must be 1-255 printable ASCII characters.');
  }
  if (name.toLowerCase().startsWith('sg-'))
    throw errors.invalidParameter("groupName must not start with 'sg-'.");
  if (name === 'default')
    throw new CloudError('InvalidGroup.Reserved', "The security group name 'default' is reserved.");
  return name;
}
