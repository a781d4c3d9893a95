import { assertNftTableName } from '@minicloud/domain';
import type { VpcNetworkModel, VpcRulesetPlan } from './model.js';
import { sortedByIp } from './util.js';
import { planVpcRuleset } from './validate.js';

/**
 * The full render: the whole table from the plan, as one `nft -f` script that replaces it in
 * one transaction.
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
 */

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
