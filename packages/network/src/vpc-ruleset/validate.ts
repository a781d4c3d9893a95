import {
  assertBridgeName,
  assertForeignLinkName,
  assertIpv4,
  assertNftTableName,
  assertVpcId,
  invalid,
  ipToInt,
  parseCidr,
  type ParsedCidr,
} from '@minicloud/domain';
import { assertGatewayInside } from '../dhcp/dnsmasq-args.js';
import type { VpcModel, VpcNetworkModel, VpcRulesetPlan } from './model.js';
import { sortedByIp } from './util.js';

/**
 * Validation of the model into a plan (throws NetworkValidationError).
 *
 * VPC CIDRs must not overlap each other: the host routes between all bridges in one routing table
 * and conntrack has one zone, so overlapping VPCs would need a VRF and a conntrack zone per VPC.
 */

const SUBNET_ID_RE = /^subnet-[0-9a-f]{17}$/;

function byText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

interface CheckedVpc {
  model: VpcModel;
  bridge: string;
  net: ParsedCidr;
  subnets: { subnetId: string; net: ParsedCidr; gatewayIp: string }[];
}

/** Validate the model and reduce it to sorted set contents. Throws NetworkValidationError. */
export function planVpcRuleset(model: VpcNetworkModel): VpcRulesetPlan {
  if (model === null || typeof model !== 'object')
    throw invalid('InvalidNetworkSpec', 'VPC network model must be an object');
  const table = assertNftTableName(model.table);
  const uplink = model.uplink === null ? null : assertForeignLinkName(model.uplink, 'uplink');
  const notes: string[] = [];

  const vpcs: CheckedVpc[] = [];
  const vpcIds = new Set<string>();
  const bridgeSet = new Set<string>();
  const subnetIds = new Set<string>();
  for (const v of model.vpcs ?? []) {
    if (v === null || typeof v !== 'object')
      throw invalid('InvalidNetworkSpec', 'VPC must be an object');
    const vpcId = assertVpcId(v.vpcId);
    if (vpcIds.has(vpcId)) throw invalid('InvalidNetworkSpec', `VPC ${vpcId} appears twice`);
    vpcIds.add(vpcId);
    const bridge = assertBridgeName(v.bridge);
    if (bridgeSet.has(bridge))
      throw invalid('InvalidNetworkSpec', `bridge ${bridge} is used by two VPCs`);
    bridgeSet.add(bridge);
    if (bridge === uplink) throw invalid('InvalidNetworkSpec', `uplink ${uplink} is a VPC bridge`);
    const net = parseCidr(v.cidr);
    const subnets: CheckedVpc['subnets'] = [];
    for (const s of v.subnets ?? []) {
      if (typeof s?.subnetId !== 'string' || !SUBNET_ID_RE.test(s.subnetId)) {
        throw invalid('InvalidNetworkSpec', `invalid subnet id ${JSON.stringify(s?.subnetId)}`);
      }
      if (subnetIds.has(s.subnetId))
        throw invalid('InvalidNetworkSpec', `subnet ${s.subnetId} appears twice`);
      subnetIds.add(s.subnetId);
      const sn = parseCidr(s.cidr);
      if (sn.networkInt < net.networkInt || sn.broadcastInt > net.broadcastInt) {
        throw invalid(
          'InvalidNetworkSpec',
          `subnet ${s.subnetId} (${sn.cidr}) is not inside ${vpcId} (${net.cidr})`,
        );
      }
      const gatewayIp = assertIpv4(s.gatewayIp, 'gateway address');
      assertGatewayInside(sn, gatewayIp);
      subnets.push({ subnetId: s.subnetId, net: sn, gatewayIp });
    }
    assertDisjoint(
      subnets.map((s) => ({ what: `subnet ${s.subnetId}`, net: s.net })),
      `subnets of ${vpcId}`,
    );
    vpcs.push({ model: v, bridge, net, subnets });
  }
  assertDisjoint(
    vpcs.map((v) => ({ what: v.model.vpcId, net: v.net })),
    'VPC CIDRs (one routing table per host)',
  );
  if (uplink === null) {
    for (const v of vpcs) {
      if (v.model.internetGateway)
        notes.push(`${v.model.vpcId} has an internet gateway but the host has no uplink`);
    }
  }

  const byVpcId = new Map(vpcs.map((v) => [v.model.vpcId, v]));
  // VPC ranges are disjoint (checked above): a binary search finds the one holding an address.
  const ranges = [...vpcs].sort((a, b) => a.net.networkInt - b.net.networkInt);
  const vpcHolding = (n: number): CheckedVpc | undefined => {
    let lo = 0;
    let hi = ranges.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const r = ranges[mid]!;
      if (n < r.net.networkInt) hi = mid - 1;
      else if (n > r.net.broadcastInt) lo = mid + 1;
      else return r;
    }
    return undefined;
  };
  const held = new Set<string>();
  const privates = new Map<string, string>();
  const eipDnat: [string, string][] = [];
  for (const e of model.elasticIps ?? []) {
    if (e === null || typeof e !== 'object')
      throw invalid('InvalidNetworkSpec', 'Elastic IP must be an object');
    const pub = assertIpv4(e.publicIp, 'Elastic IP');
    if (held.has(pub)) throw invalid('InvalidNetworkSpec', `Elastic IP ${pub} appears twice`);
    held.add(pub);
    const inside = vpcHolding(ipToInt(pub));
    if (inside) {
      throw invalid(
        'InvalidNetworkSpec',
        `Elastic IP ${pub} lies inside ${inside.model.vpcId} (${inside.net.cidr})`,
      );
    }
    if (e.privateIp === null || e.privateIp === undefined) continue;
    const priv = assertIpv4(e.privateIp, 'private address');
    const other = privates.get(priv);
    if (other !== undefined) {
      throw invalid(
        'InvalidNetworkSpec',
        `private address ${priv} is associated with two Elastic IPs (${other}, ${pub})`,
      );
    }
    privates.set(priv, pub);
    if (typeof e.vpcId !== 'string')
      throw invalid('InvalidNetworkSpec', `Elastic IP ${pub} is associated but has no vpcId`);
    const vpc = byVpcId.get(e.vpcId);
    if (!vpc)
      throw invalid('InvalidNetworkSpec', `Elastic IP ${pub} refers to unknown VPC ${e.vpcId}`);
    const privInt = ipToInt(priv);
    const subnet = vpc.subnets.find(
      (s) => privInt >= s.net.firstHostInt && privInt <= s.net.lastHostInt,
    );
    if (!subnet) {
      throw invalid(
        'InvalidNetworkSpec',
        `Elastic IP ${pub}: ${priv} is not a host address of a subnet of ${vpc.model.vpcId}`,
      );
    }
    if (subnet.gatewayIp === priv)
      throw invalid('InvalidNetworkSpec', `Elastic IP ${pub}: ${priv} is a router address`);
    if (uplink === null) {
      notes.push(`Elastic IP ${pub} -> ${priv} is inactive: the host has no uplink`);
    } else if (!vpc.model.internetGateway) {
      notes.push(
        `Elastic IP ${pub} -> ${priv} is inactive: ${vpc.model.vpcId} has no internet gateway`,
      );
    } else {
      eipDnat.push([pub, priv]);
    }
  }

  const sortedVpcs = [...vpcs].sort((a, b) => byText(a.bridge, b.bridge));
  const igw = sortedVpcs.filter((v) => v.model.internetGateway && uplink !== null);
  return {
    table,
    uplink,
    bridges: sortedVpcs.map((v) => v.bridge),
    igwBridges: igw.map((v) => v.bridge),
    vpcNets: sortedVpcs.map((v) => [v.bridge, v.net.cidr]),
    igwNets: [...igw].sort((a, b) => a.net.networkInt - b.net.networkInt).map((v) => v.net.cidr),
    routerAddrs: sortedVpcs.flatMap((v) =>
      [...v.subnets]
        .sort((a, b) => a.net.networkInt - b.net.networkInt)
        .map((s): [string, string] => [v.bridge, s.gatewayIp]),
    ),
    eipHeld: sortedByIp([...held], (x) => x),
    eipDnat: sortedByIp(eipDnat, (x) => x[0]),
    notes,
  };
}

function assertDisjoint(items: { what: string; net: ParsedCidr }[], context: string): void {
  const sorted = [...items].sort((a, b) => a.net.networkInt - b.net.networkInt);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1]!;
    const cur = sorted[i]!;
    if (cur.net.networkInt <= prev.net.broadcastInt) {
      throw invalid(
        'InvalidNetworkSpec',
        `${context}: ${prev.what} (${prev.net.cidr}) overlaps ${cur.what} (${cur.net.cidr})`,
      );
    }
  }
}
