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

/**
 * The VPC world of one host as ONE nft table (family ip, e.g. mc_vpc), rendered by a pure function
 * from the model and applied atomically (`nft -f`: the table is replaced in one transaction).
 *
 * Everything that grows with the model lives in sets and maps; the rules are a fixed list, so the
 * per-packet cost does not grow with VPCs or Elastic IPs and an Elastic IP change is a set-element
 * update (renderEipMapUpdate), not a rule change:
 *
 *   bridges       ifname              every VPC bridge
 *   igw_bridges   ifname              bridges of VPCs with an internet gateway
 *   intra         ifname . ifname     (bridge, bridge) per VPC: traffic inside one VPC (bridged in a
 *                                     subnet, or routed by the host between the VPC's subnets)
 *   vpc_nets      ifname . ipv4_addr  (bridge, VPC CIDR): sources a bridge may send from
 *   igw_nets      ipv4_addr interval  CIDRs of VPCs with an internet gateway (NATed to the uplink)
 *   router_addrs  ifname . ipv4_addr  (bridge, router address): the host addresses a VPC may reach
 *   eip_held      ipv4_addr           Elastic IPs held on the uplink (allocated)
 *   eip_dnat      ipv4_addr : ipv4_addr   public -> private (associated and active)
 *   eip_snat      ipv4_addr : ipv4_addr   private -> public
 *
 * Chains (all with policy accept: they only judge traffic from or to a VPC bridge or an Elastic
 * IP; in nftables an accept ends only this chain, so another table, e.g. issue 4's security
 * groups in the inet family, still gets its say, and a drop anywhere is final):
 *
 *   prerouting   dstnat   public -> private for traffic from the uplink and from VPCs with an
 *                         internet gateway (hairpin: an instance reaching an Elastic IP)
 *   output       -100     the same for the host itself (admins, health checks)
 *   postrouting  srcnat   to the uplink: private -> its Elastic IP, else masquerade; hairpin
 *                         traffic into a bridge is source-NATed the same way, so the reply comes
 *                         back through the host
 *   forward      filter   spoofed source (outside the bridge's VPC) dropped; same VPC accepted;
 *                         DNATed (Elastic IP) traffic into a VPC with an internet gateway accepted;
 *                         VPC with IGW -> uplink accepted, replies back; anything else from or to a
 *                         VPC bridge dropped (other VPCs, other host networks, no IGW)
 *   input        filter   new traffic to an Elastic IP that nothing DNATed (not associated)
 *                         dropped, so host services never answer on a public address; a VPC opens
 *                         connections only to its own router addresses on the host (not another
 *                         VPC's dnsmasq, not the uplink address); broadcast and multicast (DHCP)
 *                         and replies to the host's own connections pass
 *
 * VPC CIDRs must not overlap each other: the host routes between all bridges in one routing table
 * and conntrack has one zone, so overlapping VPCs would need a VRF and a conntrack zone per VPC.
 */

export interface VpcSubnetModel {
  /** subnet- + 17 hex (used in messages only). */
  subnetId: string;
  cidr: string;
  /** The host's (router's) address in the subnet, e.g. .1. */
  gatewayIp: string;
}

export interface VpcModel {
  vpcId: string;
  /** The VPC's bridge (see vpcBridgeName). */
  bridge: string;
  cidr: string;
  subnets: readonly VpcSubnetModel[];
  /** An internet gateway is attached: outbound NAT and Elastic IPs work. */
  internetGateway: boolean;
}

export interface ElasticIpModel {
  publicIp: string;
  /** The associated instance's private address, or null when allocated but not associated. */
  privateIp: string | null;
  /** The VPC of privateIp (required when privateIp is set). */
  vpcId?: string | null;
}

export interface VpcNetworkModel {
  /** nft table (family ip), see vpcTableName. */
  table: string;
  /** The host's interface to the outside (where Elastic IPs live), or null. */
  uplink: string | null;
  vpcs: readonly VpcModel[];
  /** Every allocated Elastic IP of this host, associated or not. */
  elasticIps: readonly ElasticIpModel[];
}

/** The model reduced to set and map contents, sorted (what the ruleset is rendered from). */
export interface VpcRulesetPlan {
  table: string;
  uplink: string | null;
  bridges: string[];
  igwBridges: string[];
  vpcNets: [bridge: string, cidr: string][];
  igwNets: string[];
  routerAddrs: [bridge: string, ip: string][];
  eipHeld: string[];
  /** public -> private, active associations only. */
  eipDnat: [publicIp: string, privateIp: string][];
  /** Things the operator should know (inactive Elastic IPs, an IGW without uplink). */
  notes: string[];
}

const SUBNET_ID_RE = /^subnet-[0-9a-f]{17}$/;

/** Sort by an address, converting each address once (ipToInt validates, so it is not free). */
function sortedByIp<T>(xs: readonly T[], key: (x: T) => string): T[] {
  return xs
    .map((x) => ({ x, n: ipToInt(key(x)) }))
    .sort((a, b) => a.n - b.n)
    .map((e) => e.x);
}

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

function q(name: string): string {
  return `"${name}"`;
}

function setLines(
  name: string,
  type: string,
  elements: string[],
  comment: string,
  flags?: string,
): string[] {
  return [
    `\t# ${comment}`,
    `\tset ${name} {`,
    `\t\ttype ${type}`,
    ...(flags ? [`\t\tflags ${flags}`] : []),
    ...(elements.length ? [`\t\telements = { ${elements.join(', ')} }`] : []),
    '\t}',
  ];
}

function mapLines(name: string, elements: string[], comment: string): string[] {
  return [
    `\t# ${comment}`,
    `\tmap ${name} {`,
    '\t\ttype ipv4_addr : ipv4_addr',
    ...(elements.length ? [`\t\telements = { ${elements.join(', ')} }`] : []),
    '\t}',
  ];
}

/** The whole table as one `nft -f` script (create-if-missing, delete, re-create: atomic). */
export function renderVpcRulesetPlan(plan: VpcRulesetPlan): string {
  const t = plan.table;
  const up = plan.uplink === null ? null : q(plan.uplink);
  const lines: string[] = [`table ip ${t} {}`, `delete table ip ${t}`, `table ip ${t} {`];
  lines.push(
    ...setLines('bridges', 'ifname', plan.bridges.map(q), 'every VPC bridge'),
    ...setLines(
      'igw_bridges',
      'ifname',
      plan.igwBridges.map(q),
      'bridges of VPCs with an internet gateway',
    ),
    ...setLines(
      'intra',
      'ifname . ifname',
      plan.bridges.map((b) => `${q(b)} . ${q(b)}`),
      'inside one VPC',
    ),
    ...setLines(
      'vpc_nets',
      'ifname . ipv4_addr',
      plan.vpcNets.map(([b, c]) => `${q(b)} . ${c}`),
      'the addresses a VPC bridge may send from',
      'interval',
    ),
    ...setLines('igw_nets', 'ipv4_addr', plan.igwNets, 'VPCs with an internet gateway', 'interval'),
    ...setLines(
      'router_addrs',
      'ifname . ipv4_addr',
      plan.routerAddrs.map(([b, ip]) => `${q(b)} . ${ip}`),
      'host addresses each VPC may reach (its routers, DHCP, DNS)',
    ),
    ...setLines('eip_held', 'ipv4_addr', plan.eipHeld, 'Elastic IPs held on the uplink'),
    ...mapLines(
      'eip_dnat',
      plan.eipDnat.map(([pub, priv]) => `${pub} : ${priv}`),
      'Elastic IP -> private address',
    ),
    ...mapLines(
      'eip_snat',
      sortedByIp(plan.eipDnat, (x) => x[1]).map(([pub, priv]) => `${priv} : ${pub}`),
      'private address -> Elastic IP',
    ),
  );

  lines.push(
    '\tchain prerouting {',
    '\t\ttype nat hook prerouting priority dstnat; policy accept;',
  );
  if (up) {
    lines.push(
      `\t\tiifname ${up} ip daddr @eip_dnat counter dnat to ip daddr map @eip_dnat`,
      '\t\tiifname @igw_bridges ip daddr @eip_dnat counter dnat to ip daddr map @eip_dnat',
    );
  }
  lines.push('\t}');

  lines.push('\tchain output {', '\t\ttype nat hook output priority -100; policy accept;');
  if (up) lines.push('\t\tdnat to ip daddr map @eip_dnat');
  lines.push('\t}');

  lines.push(
    '\tchain postrouting {',
    '\t\ttype nat hook postrouting priority srcnat; policy accept;',
  );
  if (up) {
    lines.push(
      `\t\toifname ${up} ip saddr @eip_snat counter snat to ip saddr map @eip_snat`,
      `\t\toifname ${up} ip saddr @igw_nets counter masquerade`,
      '\t\toifname @bridges ct status dnat ip saddr @eip_snat counter snat to ip saddr map @eip_snat',
      '\t\toifname @bridges ct status dnat ip saddr @igw_nets counter masquerade',
    );
  }
  lines.push('\t}');

  lines.push(
    '\tchain forward {',
    '\t\ttype filter hook forward priority filter; policy accept;',
    '\t\tiifname @bridges iifname . ip saddr != @vpc_nets counter drop',
    '\t\tiifname . oifname @intra accept',
  );
  if (up) {
    lines.push(
      `\t\toifname @igw_bridges ct status dnat iifname ${up} accept`,
      '\t\toifname @igw_bridges ct status dnat iifname @igw_bridges accept',
      `\t\tiifname @igw_bridges oifname ${up} accept`,
      `\t\tiifname ${up} oifname @igw_bridges ct state established,related accept`,
    );
  }
  lines.push('\t\tiifname @bridges counter drop', '\t\toifname @bridges counter drop', '\t}');

  lines.push(
    '\tchain input {',
    '\t\ttype filter hook input priority filter; policy accept;',
    '\t\tct state established,related accept',
    '\t\tip daddr @eip_held counter drop',
    '\t\tiifname @bridges fib daddr type local iifname . ip daddr != @router_addrs counter drop',
    '\t}',
    '}',
    '',
  );
  return lines.join('\n');
}

/** Validate the model and render the whole table (see the module comment). */
export function renderVpcRuleset(model: VpcNetworkModel): string {
  return renderVpcRulesetPlan(planVpcRuleset(model));
}

/** A script that removes the table if it exists (nft 1.0.6 has no `destroy`). */
export function renderVpcRulesetRemoval(table: string): string {
  assertNftTableName(table);
  return `table ip ${table} {}\ndelete table ip ${table}\n`;
}
