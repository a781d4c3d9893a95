import {
  planSecurityGroups,
  renderSecurityGroupRemoval,
  renderSecurityGroups,
  sgComboChainName,
  type SecurityGroupRuleModel,
} from '@minicloud/network';
import { WEB, APP, DEF, OTHER, rid, model, problemOf } from './fixtures.js';

describe('renderSecurityGroups', () => {
  test('golden: groups, ports, a shared combination, referenced groups, host services', () => {
    expect(renderSecurityGroups(model())).toBe(`table inet mc_sg {}
delete table inet mc_sg
table bridge mc_sgb {}
delete table bridge mc_sgb
table inet mc_sg {
\t# managed bridges (comment: the VPC)
\tset bridges {
\t\ttype ifname
\t\telements = { "mcv0a0a0a0a0" comment "vpc-0a0a0a0a0a0a0a0a0", "mcv0b0b0b0b0" comment "vpc-0b0b0b0b0b0b0b0b0" }
\t}
\t# the host's addresses on each bridge
\tset router_addrs {
\t\ttype ifname . ipv4_addr
\t\telements = { "mcv0a0a0a0a0" . 10.1.1.1, "mcv0a0a0a0a0" . 10.1.2.1, "mcv0b0b0b0b0" . 10.2.0.1 }
\t}
\t# what guests may reach on router addresses
\tset router_services {
\t\ttype inet_proto . inet_service
\t\telements = { tcp . 53, tcp . 8775, udp . 53, udp . 67 }
\t}
\t# other host services for guests
\tset host_services {
\t\ttype ipv4_addr . inet_proto . inet_service
\t\telements = { 169.254.169.254 . tcp . 80 }
\t}
\tset sg_0000000000000000a {
\t\ttype ipv4_addr
\t\tcomment "vpc-0a0a0a0a0a0a0a0a0"
\t\telements = { 10.1.1.10 }
\t}
\tset sg_0000000000000000b {
\t\ttype ipv4_addr
\t\tcomment "vpc-0a0a0a0a0a0a0a0a0"
\t\telements = { 10.1.1.20, 10.1.2.30 }
\t}
\tset sg_0000000000000000c {
\t\ttype ipv4_addr
\t\tcomment "vpc-0a0a0a0a0a0a0a0a0"
\t\telements = { 10.1.1.20, 10.1.2.30 }
\t}
\tset sg_0000000000000000d {
\t\ttype ipv4_addr
\t\tcomment "vpc-0b0b0b0b0b0b0b0b0"
\t\telements = { 10.2.0.40 }
\t}
\tchain g_0000000000000000a_in {
\t\tip saddr 10.1.1.16/28 tcp dport 22 accept comment "sgr-00000000000000001"
\t\tip saddr 10.1.1.16/28 icmp type 8 accept comment "sgr-00000000000000002"
\t\tip saddr @sg_0000000000000000b tcp dport 8080 accept comment "sgr-00000000000000003"
\t}
\tchain g_0000000000000000a_out {
\t\tip daddr 0.0.0.0/0 accept comment "sgr-00000000000000004"
\t}
\tchain g_0000000000000000b_in {
\t}
\tchain g_0000000000000000b_out {
\t\tip daddr 0.0.0.0/0 accept comment "sgr-00000000000000005"
\t}
\tchain g_0000000000000000c_in {
\t\tip saddr @sg_0000000000000000c accept comment "sgr-00000000000000006"
\t}
\tchain g_0000000000000000c_out {
\t\tip daddr 0.0.0.0/0 accept comment "sgr-00000000000000007"
\t}
\tchain g_0000000000000000d_in {
\t}
\tchain g_0000000000000000d_out {
\t\tip daddr 10.2.0.0/16 udp dport 53 accept comment "sgr-00000000000000008"
\t}
\tchain c_0000000000000000a_in {
\t\tjump g_0000000000000000a_in
\t\tcounter drop
\t}
\tchain c_0000000000000000a_out {
\t\tjump g_0000000000000000a_out
\t\tcounter drop
\t}
\tchain c_0000000000000000b_0000000000000000c_in {
\t\tjump g_0000000000000000b_in
\t\tjump g_0000000000000000c_in
\t\tcounter drop
\t}
\tchain c_0000000000000000b_0000000000000000c_out {
\t\tjump g_0000000000000000b_out
\t\tjump g_0000000000000000c_out
\t\tcounter drop
\t}
\tchain c_0000000000000000d_in {
\t\tjump g_0000000000000000d_in
\t\tcounter drop
\t}
\tchain c_0000000000000000d_out {
\t\tjump g_0000000000000000d_out
\t\tcounter drop
\t}
\t# (bridge, port address) -> its groups, outbound
\tmap egress_ports {
\t\ttype ifname . ipv4_addr : verdict
\t\telements = { "mcv0a0a0a0a0" . 10.1.1.10 : jump c_0000000000000000a_out, "mcv0a0a0a0a0" . 10.1.1.20 : jump c_0000000000000000b_0000000000000000c_out, "mcv0a0a0a0a0" . 10.1.2.30 : jump c_0000000000000000b_0000000000000000c_out, "mcv0b0b0b0b0" . 10.2.0.40 : jump c_0000000000000000d_out }
\t}
\t# (bridge, port address) -> its groups, inbound
\tmap ingress_ports {
\t\ttype ifname . ipv4_addr : verdict
\t\telements = { "mcv0a0a0a0a0" . 10.1.1.10 : jump c_0000000000000000a_in, "mcv0a0a0a0a0" . 10.1.1.20 : jump c_0000000000000000b_0000000000000000c_in, "mcv0a0a0a0a0" . 10.1.2.30 : jump c_0000000000000000b_0000000000000000c_in, "mcv0b0b0b0b0" . 10.2.0.40 : jump c_0000000000000000d_in }
\t}
\t# from a guest: the source port's egress rules
\tchain egress {
\t\ttype filter hook forward priority filter + 10; policy accept;
\t\tiifname != @bridges accept
\t\tct state established,related accept
\t\tct state invalid counter drop
\t\tiifname . ip saddr vmap @egress_ports
\t\tcounter drop
\t}
\t# to a guest: the destination port's ingress rules
\tchain ingress {
\t\ttype filter hook forward priority filter + 20; policy accept;
\t\toifname != @bridges accept
\t\tct state established,related accept
\t\tct state invalid counter drop
\t\toifname . ip daddr vmap @ingress_ports
\t\tcounter drop
\t}
\t# from a guest to the host: DHCP, DNS and the configured services only
\tchain input {
\t\ttype filter hook input priority filter + 10; policy accept;
\t\tiifname != @bridges accept
\t\tct state established,related accept
\t\tct state invalid counter drop
\t\tip daddr 255.255.255.255 udp sport 68 udp dport 67 accept
\t\tiifname . ip daddr @router_addrs meta l4proto . th dport @router_services accept
\t\tip daddr . meta l4proto . th dport @host_services accept
\t\tcounter drop
\t}
}
table bridge mc_sgb {
\t# known guest ports
\tset ports {
\t\ttype ifname
\t\telements = { "mct00000000a", "mct00000000b", "mct00000000c", "mct00000000d" }
\t}
\t# the MAC each port may send from
\tset port_macs {
\t\ttype ifname . ether_addr
\t\telements = { "mct00000000a" . 52:54:00:00:00:0a, "mct00000000b" . 52:54:00:00:00:0b, "mct00000000c" . 52:54:00:00:00:0c, "mct00000000d" . 52:54:00:00:00:0d }
\t}
\t# the MAC and IPv4 address of each port
\tset port_addrs {
\t\ttype ifname . ether_addr . ipv4_addr
\t\telements = { "mct00000000a" . 52:54:00:00:00:0a . 10.1.1.10, "mct00000000b" . 52:54:00:00:00:0b . 10.1.1.20, "mct00000000c" . 52:54:00:00:00:0c . 10.1.2.30, "mct00000000d" . 52:54:00:00:00:0d . 10.2.0.40 }
\t}
\t# the address frames into a port must be for
\tset port_ips {
\t\ttype ifname . ipv4_addr
\t\telements = { "mct00000000a" . 10.1.1.10, "mct00000000b" . 10.1.1.20, "mct00000000c" . 10.1.2.30, "mct00000000d" . 10.2.0.40 }
\t}
\tchain prerouting {
\t\ttype filter hook prerouting priority filter; policy accept;
\t\tiifname != @ports iifname != "mct*" accept
\t\tiifname . ether saddr != @port_macs counter drop
\t\tether type vmap { ip : jump from_port_ip, arp : jump from_port_arp }
\t\tcounter drop
\t}
\tchain from_port_ip {
\t\tiifname . ether saddr . ip saddr @port_addrs accept
\t\tip saddr 0.0.0.0 ip daddr 255.255.255.255 udp sport 68 udp dport 67 accept
\t\tcounter drop
\t}
\tchain from_port_arp {
\t\tarp htype 1 arp ptype ip arp hlen 6 arp plen 4 iifname . arp saddr ether . arp saddr ip @port_addrs accept
\t\tarp htype 1 arp ptype ip arp hlen 6 arp plen 4 arp operation request arp saddr ip 0.0.0.0 iifname . arp saddr ether @port_macs accept
\t\tcounter drop
\t}
\tchain forward {
\t\ttype filter hook forward priority filter; policy accept;
\t\toifname != @ports oifname != "mct*" accept
\t\tether type ip oifname . ip daddr != @port_ips counter drop
\t}
}
`);
  });

  test('rules: every protocol and port form', () => {
    const rules: [Omit<SecurityGroupRuleModel, 'ruleId'>, string][] = [
      [
        { ipProtocol: 'tcp', fromPort: 22, toPort: 22, cidr: '10.0.0.0/8' },
        'ip saddr 10.0.0.0/8 tcp dport 22',
      ],
      [
        { ipProtocol: 'tcp', fromPort: 1000, toPort: 2000, cidr: '10.0.0.0/8' },
        'ip saddr 10.0.0.0/8 tcp dport 1000-2000',
      ],
      [
        { ipProtocol: 'tcp', fromPort: 0, toPort: 65535, cidr: '10.0.0.0/8' },
        'ip saddr 10.0.0.0/8 meta l4proto tcp',
      ],
      [
        { ipProtocol: 'udp', fromPort: 53, toPort: 53, cidr: '192.0.2.7/32' },
        'ip saddr 192.0.2.7/32 udp dport 53',
      ],
      [
        { ipProtocol: 'udp', fromPort: 0, toPort: 0, cidr: '10.0.0.0/8' },
        'ip saddr 10.0.0.0/8 udp dport 0',
      ],
      [
        { ipProtocol: 'icmp', fromPort: -1, toPort: -1, cidr: '10.0.0.0/8' },
        'ip saddr 10.0.0.0/8 ip protocol icmp',
      ],
      [
        { ipProtocol: 'icmp', fromPort: 3, toPort: 4, cidr: '10.0.0.0/8' },
        'ip saddr 10.0.0.0/8 icmp type 3 icmp code 4',
      ],
      [{ ipProtocol: 'icmp', cidr: '10.0.0.0/8' }, 'ip saddr 10.0.0.0/8 ip protocol icmp'],
      [{ ipProtocol: '-1', cidr: '0.0.0.0/0' }, 'ip saddr 0.0.0.0/0'],
      [
        { ipProtocol: '-1', fromPort: -1, toPort: -1, referencedGroupId: APP },
        'ip saddr @sg_0000000000000000b',
      ],
    ];
    for (const [rule, text] of rules) {
      const ruleId = rid();
      const m = model();
      const g = {
        ...m.groups[0]!,
        ingress: [{ ...rule, ruleId }],
        egress: [{ ...rule, ruleId: rid() }],
      };
      const script = renderSecurityGroups({ ...m, groups: [g, ...m.groups.slice(1)] });
      expect(script).toContain(`\t\t${text} accept comment "${ruleId}"\n`);
      expect(script).toContain(`\t\t${text.replace('ip saddr', 'ip daddr')} accept comment`);
    }
  });

  test('the same model in any order renders the same bytes; MACs are normalised', () => {
    const m = model();
    const shuffled = model({
      bridges: [...m.bridges]
        .reverse()
        .map((b) => ({ ...b, routerIps: [...b.routerIps].reverse() })),
      groups: [...m.groups].reverse(),
      ports: [...m.ports].reverse().map((p) => ({ ...p, groupIds: [...p.groupIds].reverse() })),
      hostServices: [...m.hostServices!].reverse(),
    });
    expect(renderSecurityGroups(shuffled)).toBe(renderSecurityGroups(m));
  });

  test('ports with the same groups share one combination chain pair', () => {
    const plan = planSecurityGroups(model());
    expect(plan.combos).toEqual([[WEB], [APP, DEF], [OTHER]]);
    expect(plan.ruleCount).toBe(8);
    const script = renderSecurityGroups(model());
    expect(script.match(/chain c_/g)).toHaveLength(6);
    expect(sgComboChainName([DEF, APP], 'in')).toBe('c_0000000000000000b_0000000000000000c_in');
  });

  test('an empty model is a valid skeleton: no elements, every base chain', () => {
    const script = renderSecurityGroups({ prefix: 'mc', bridges: [], groups: [], ports: [] });
    expect(script).not.toMatch(/elements = \{ [^}]*"|set sg_|chain [gc]_/);
    for (const c of ['egress', 'ingress', 'input', 'prerouting', 'from_port_ip', 'forward'])
      expect(script).toContain(`\tchain ${c} {`);
    // DNS and DHCP towards routers are always there
    expect(script).toContain('elements = { tcp . 53, udp . 53, udp . 67 }');
  });

  test('tapPrefix: custom, or null (only listed ports are checked)', () => {
    expect(renderSecurityGroups(model({ tapPrefix: 'mcx' }))).toContain(
      'iifname != @ports iifname != "mcx*" accept',
    );
    const none = renderSecurityGroups(model({ tapPrefix: null }));
    expect(none).toContain('\t\tiifname != @ports accept\n');
    expect(none).toContain('\t\toifname != @ports accept\n');
    expect(none).not.toContain('*"');
  });

  test('allowRouterPing adds one input rule', () => {
    expect(renderSecurityGroups(model())).not.toContain('echo-request');
    expect(renderSecurityGroups(model({ allowRouterPing: true }))).toContain(
      '\t\ticmp type echo-request iifname . ip daddr @router_addrs accept\n',
    );
  });

  test('removal script removes both tables if present', () => {
    expect(renderSecurityGroupRemoval('mc')).toBe(
      'table inet mc_sg {}\ndelete table inet mc_sg\ntable bridge mc_sgb {}\ndelete table bridge mc_sgb\n',
    );
    expect(problemOf(() => renderSecurityGroupRemoval('mc_x; flush ruleset'))).toBe('InvalidName');
  });
});
