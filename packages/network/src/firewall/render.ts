import { elementsOf, type ElementMap } from './elements.js';
import type { SecurityGroupNetworkModel, SecurityGroupPlan } from './model.js';
import {
  sgBridgeTableName,
  sgComboChainName,
  sgGroupChainName,
  sgGroupSetName,
  sgTableName,
} from './names.js';
import { planSecurityGroups } from './validate.js';

/**
 * The full render: both tables of one host from the plan, as one `nft -f` script that replaces
 * them in one transaction.
 *
 * Why the filter keys on addresses and not on taps: with br_netfilter, bridged IPv4 passes the
 * inet forward hook, but there iifname/oifname are the BRIDGE (the ports are invisible outside
 * the bridge family, and this kernel has no nft bridge meta either). So the bridge table makes
 * sure every IPv4 packet from a port carries that port's address, and the inet table then
 * dispatches on (bridge, address):
 *
 *   inet <prefix>_sg
 *     bridges          ifname                      managed bridges (element comment: the VPC)
 *     router_addrs     ifname . ipv4_addr          the host's addresses on each bridge
 *     router_services  inet_proto . inet_service  what guests may reach on router_addrs
 *                                                 (DNS udp/tcp 53, DHCP udp 67, + configured)
 *     host_services    ipv4_addr . inet_proto . inet_service   other host services (metadata)
 *     sg_<17 hex>      ipv4_addr                   members of a group (comment: its VPC); "from
 *                                                 group X" rules are `ip saddr @sg_X`, so they do
 *                                                 not grow with instances, and a launch is an
 *                                                 element update
 *     egress_ports     ifname . ipv4_addr : verdict   (bridge, port address) -> jump c_<combo>_out
 *     ingress_ports    ifname . ipv4_addr : verdict   (bridge, port address) -> jump c_<combo>_in
 *     chain g_<hex>_in / g_<hex>_out   a group's rules, each `... accept comment "sgr-..."`
 *     chain c_<hex>[_<hex>...]_in/out  one per distinct combination of groups in use: jumps to
 *                                      each group's chain, then drop (the union of the groups)
 *     chain egress   forward, filter + 10: from a managed bridge: established/related accept,
 *                    invalid drop, dispatch on the source port, drop what no port claims
 *     chain ingress  forward, filter + 20: the same towards a managed bridge, on the destination
 *     chain input    input, filter + 10: from a managed bridge to the host only DHCP, DNS and
 *                    the configured services (and replies to the host's own connections)
 *
 *   Two base chains on one hook: an accept ends only its own base chain, so a packet between
 *   two guests must pass the sender's egress AND the receiver's ingress; a drop anywhere (also in
 *   the ip table <prefix>_vpc, which runs first at priority filter) is final.
 *
 *   bridge <prefix>_sgb
 *     ports       ifname                                   every known port (tap)
 *     port_macs   ifname . ether_addr                      (tap, MAC)
 *     port_addrs  ifname . ether_addr . ipv4_addr          (tap, MAC, IP)
 *     port_ips    ifname . ipv4_addr                       (tap, IP)
 *     chain prerouting  filter (-200, before br_netfilter): frames from a port (a known tap, or
 *                       any interface named <tapPrefix>*) must carry the port's MAC; IPv4 its
 *                       address (DHCP 0.0.0.0:68 -> 255.255.255.255:67 excepted); ARP its MAC
 *                       and IP as sender (or 0.0.0.0 in a probe); everything else (IPv6, VLAN
 *                       tags, other ethertypes) drops
 *     chain forward     frames bridged INTO a port must be addressed to the port's IP, so a
 *                       guest cannot reach one guest through another's allowed address
 *
 * Host-originated traffic to guests (health checks, DHCP replies) is not filtered: the host is
 * the control plane. IPv4 only (VPCs are IPv4-only; IPv6 frames from guests are dropped).
 */

const INET_SETS: [name: string, type: string, comment: string][] = [
  ['bridges', 'ifname', 'managed bridges (comment: the VPC)'],
  ['router_addrs', 'ifname . ipv4_addr', "the host's addresses on each bridge"],
  ['router_services', 'inet_proto . inet_service', 'what guests may reach on router addresses'],
  ['host_services', 'ipv4_addr . inet_proto . inet_service', 'other host services for guests'],
];

const BRIDGE_SETS: [name: string, type: string, comment: string][] = [
  ['ports', 'ifname', 'known guest ports'],
  ['port_macs', 'ifname . ether_addr', 'the MAC each port may send from'],
  ['port_addrs', 'ifname . ether_addr . ipv4_addr', 'the MAC and IPv4 address of each port'],
  ['port_ips', 'ifname . ipv4_addr', 'the address frames into a port must be for'],
];

function elementsLine(elements: Iterable<string>, indent: string): string[] {
  const xs = [...elements];
  return xs.length ? [`${indent}elements = { ${xs.join(', ')} }`] : [];
}

/** The rules of a combination chain: each group's chain in turn, then drop. */
export function comboRules(groupIds: readonly string[], direction: 'in' | 'out'): string[] {
  return [...groupIds.map((g) => `jump ${sgGroupChainName(g, direction)}`), 'counter drop'];
}

function baseChains(plan: SecurityGroupPlan): string[] {
  const lines = [
    "\t# from a guest: the source port's egress rules",
    '\tchain egress {',
    '\t\ttype filter hook forward priority filter + 10; policy accept;',
    '\t\tiifname != @bridges accept',
    '\t\tct state established,related accept',
    '\t\tct state invalid counter drop',
    '\t\tiifname . ip saddr vmap @egress_ports',
    '\t\tcounter drop',
    '\t}',
    "\t# to a guest: the destination port's ingress rules",
    '\tchain ingress {',
    '\t\ttype filter hook forward priority filter + 20; policy accept;',
    '\t\toifname != @bridges accept',
    '\t\tct state established,related accept',
    '\t\tct state invalid counter drop',
    '\t\toifname . ip daddr vmap @ingress_ports',
    '\t\tcounter drop',
    '\t}',
    '\t# from a guest to the host: DHCP, DNS and the configured services only',
    '\tchain input {',
    '\t\ttype filter hook input priority filter + 10; policy accept;',
    '\t\tiifname != @bridges accept',
    '\t\tct state established,related accept',
    '\t\tct state invalid counter drop',
    '\t\tip daddr 255.255.255.255 udp sport 68 udp dport 67 accept',
    '\t\tiifname . ip daddr @router_addrs meta l4proto . th dport @router_services accept',
    '\t\tip daddr . meta l4proto . th dport @host_services accept',
  ];
  if (plan.allowRouterPing)
    lines.push('\t\ticmp type echo-request iifname . ip daddr @router_addrs accept');
  lines.push('\t\tcounter drop', '\t}');
  return lines;
}

function bridgeTableBody(plan: SecurityGroupPlan, elements: ElementMap): string[] {
  const lines: string[] = [];
  for (const [name, type, comment] of BRIDGE_SETS) {
    lines.push(
      `\t# ${comment}`,
      `\tset ${name} {`,
      `\t\ttype ${type}`,
      ...elementsLine(elements.get(name)!.values(), '\t\t'),
      '\t}',
    );
  }
  const notPort = (dir: 'iifname' | 'oifname') =>
    plan.tapPrefix === null
      ? `\t\t${dir} != @ports accept`
      : `\t\t${dir} != @ports ${dir} != "${plan.tapPrefix}*" accept`;
  lines.push(
    '\tchain prerouting {',
    '\t\ttype filter hook prerouting priority filter; policy accept;',
    notPort('iifname'),
    '\t\tiifname . ether saddr != @port_macs counter drop',
    '\t\tether type vmap { ip : jump from_port_ip, arp : jump from_port_arp }',
    '\t\tcounter drop',
    '\t}',
    '\tchain from_port_ip {',
    '\t\tiifname . ether saddr . ip saddr @port_addrs accept',
    '\t\tip saddr 0.0.0.0 ip daddr 255.255.255.255 udp sport 68 udp dport 67 accept',
    '\t\tcounter drop',
    '\t}',
    '\tchain from_port_arp {',
    '\t\tarp htype 1 arp ptype ip arp hlen 6 arp plen 4 iifname . arp saddr ether . arp saddr ip @port_addrs accept',
    '\t\tarp htype 1 arp ptype ip arp hlen 6 arp plen 4 arp operation request arp saddr ip 0.0.0.0 iifname . arp saddr ether @port_macs accept',
    '\t\tcounter drop',
    '\t}',
    '\tchain forward {',
    '\t\ttype filter hook forward priority filter; policy accept;',
    notPort('oifname'),
    '\t\tether type ip oifname . ip daddr != @port_ips counter drop',
    '\t}',
  );
  return lines;
}

/**
 * Both tables as one `nft -f` script: create-if-missing, delete, re-create (one transaction, so
 * there is no moment without rules; conntrack entries live on, so established flows survive).
 */
export function renderSecurityGroupPlan(plan: SecurityGroupPlan): string {
  const t = plan.inetTable;
  const tb = plan.bridgeTable;
  const elements = elementsOf(
    {
      bridges: new Map(plan.bridges.map((b) => [b.bridge, b])),
      ports: new Map(plan.ports.map((p) => [p.tap, p])),
    },
    plan.groups.map((g) => g.groupId),
  );
  const lines: string[] = [
    `table inet ${t} {}`,
    `delete table inet ${t}`,
    `table bridge ${tb} {}`,
    `delete table bridge ${tb}`,
    `table inet ${t} {`,
  ];
  const fixed = new Map<string, string[]>([
    ['bridges', [...elements.inet.get('bridges')!.values()]],
    ['router_addrs', [...elements.inet.get('router_addrs')!.values()]],
    ['router_services', plan.routerServices.map(([p, n]) => `${p} . ${n}`)],
    ['host_services', plan.hostServices.map(([a, p, n]) => `${a} . ${p} . ${n}`)],
  ]);
  for (const [name, type, comment] of INET_SETS) {
    lines.push(
      `\t# ${comment}`,
      `\tset ${name} {`,
      `\t\ttype ${type}`,
      ...elementsLine(fixed.get(name)!, '\t\t'),
      '\t}',
    );
  }
  for (const g of plan.groups) {
    const set = sgGroupSetName(g.groupId);
    lines.push(
      `\tset ${set} {`,
      '\t\ttype ipv4_addr',
      `\t\tcomment "${g.vpcId}"`,
      ...elementsLine(elements.inet.get(set)!.values(), '\t\t'),
      '\t}',
    );
  }
  for (const g of plan.groups) {
    for (const [dir, rules] of [
      ['in', g.ingress],
      ['out', g.egress],
    ] as const) {
      lines.push(
        `\tchain ${sgGroupChainName(g.groupId, dir)} {`,
        ...rules.map((r) => `\t\t${r}`),
        '\t}',
      );
    }
  }
  for (const combo of plan.combos) {
    for (const dir of ['in', 'out'] as const) {
      lines.push(
        `\tchain ${sgComboChainName(combo, dir)} {`,
        ...comboRules(combo, dir).map((r) => `\t\t${r}`),
        '\t}',
      );
    }
  }
  for (const [name, comment] of [
    ['egress_ports', '(bridge, port address) -> its groups, outbound'],
    ['ingress_ports', '(bridge, port address) -> its groups, inbound'],
  ] as const) {
    lines.push(
      `\t# ${comment}`,
      `\tmap ${name} {`,
      '\t\ttype ifname . ipv4_addr : verdict',
      ...elementsLine(elements.inet.get(name)!.values(), '\t\t'),
      '\t}',
    );
  }
  lines.push(...baseChains(plan), '}', `table bridge ${tb} {`);
  lines.push(...bridgeTableBody(plan, elements.bridge), '}', '');
  return lines.join('\n');
}

/** Validate the model and render both tables (see the module comment). */
export function renderSecurityGroups(model: SecurityGroupNetworkModel): string {
  return renderSecurityGroupPlan(planSecurityGroups(model));
}

/** A script that removes both tables if they exist (nft 1.0.6 has no `destroy`). */
export function renderSecurityGroupRemoval(prefix: string): string {
  const t = sgTableName(prefix);
  const tb = sgBridgeTableName(prefix);
  return `table inet ${t} {}\ndelete table inet ${t}\ntable bridge ${tb} {}\ndelete table bridge ${tb}\n`;
}
