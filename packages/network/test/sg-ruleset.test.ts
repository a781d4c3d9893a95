import { NetworkValidationError } from '@minicloud/domain';
import {
  parseSecurityGroupState,
  planSecurityGroups,
  planSecurityGroupUpdate,
  renderSecurityGroupRemoval,
  renderSecurityGroups,
  renderSecurityGroupUpdate,
  securityGroupStateFromPlan,
  SecurityGroupValidationError,
  sgComboChainName,
  type SecurityGroupChanges,
  type SecurityGroupNetworkModel,
  type SecurityGroupProblem,
  type SecurityGroupRuleModel,
  type SecurityGroupState,
} from '@minicloud/network';

const VPC_A = 'vpc-0a0a0a0a0a0a0a0a0';
const VPC_B = 'vpc-0b0b0b0b0b0b0b0b0';
const WEB = 'sg-0000000000000000a';
const APP = 'sg-0000000000000000b';
const DEF = 'sg-0000000000000000c';
const OTHER = 'sg-0000000000000000d'; // VPC B
const BR_A = 'mcv0a0a0a0a0';
const BR_B = 'mcv0b0b0b0b0';

let ruleSeq = 0x1000;
function rid(): string {
  return `sgr-${(++ruleSeq).toString(16).padStart(17, '0')}`;
}

function model(over: Partial<SecurityGroupNetworkModel> = {}): SecurityGroupNetworkModel {
  return {
    prefix: 'mc',
    bridges: [
      { bridge: BR_B, vpcId: VPC_B, routerIps: ['10.2.0.1'] },
      { bridge: BR_A, vpcId: VPC_A, routerIps: ['10.1.2.1', '10.1.1.1'] },
    ],
    groups: [
      {
        groupId: WEB,
        vpcId: VPC_A,
        ingress: [
          {
            ruleId: 'sgr-00000000000000001',
            ipProtocol: 'tcp',
            fromPort: 22,
            toPort: 22,
            cidr: '10.1.1.16/28',
          },
          {
            ruleId: 'sgr-00000000000000002',
            ipProtocol: 'icmp',
            fromPort: 8,
            toPort: -1,
            cidr: '10.1.1.16/28',
          },
          {
            ruleId: 'sgr-00000000000000003',
            ipProtocol: 'tcp',
            fromPort: 8080,
            toPort: 8080,
            referencedGroupId: APP,
          },
        ],
        egress: [{ ruleId: 'sgr-00000000000000004', ipProtocol: '-1', cidr: '0.0.0.0/0' }],
      },
      {
        groupId: APP,
        vpcId: VPC_A,
        ingress: [],
        egress: [{ ruleId: 'sgr-00000000000000005', ipProtocol: '-1', cidr: '0.0.0.0/0' }],
      },
      {
        groupId: DEF,
        vpcId: VPC_A,
        ingress: [{ ruleId: 'sgr-00000000000000006', ipProtocol: '-1', referencedGroupId: DEF }],
        egress: [{ ruleId: 'sgr-00000000000000007', ipProtocol: '-1', cidr: '0.0.0.0/0' }],
      },
      {
        groupId: OTHER,
        vpcId: VPC_B,
        ingress: [],
        egress: [
          {
            ruleId: 'sgr-00000000000000008',
            ipProtocol: 'udp',
            fromPort: 53,
            toPort: 53,
            cidr: '10.2.0.0/16',
          },
        ],
      },
    ],
    ports: [
      {
        tap: 'mct00000000b',
        bridge: BR_A,
        mac: '52:54:00:00:00:0B',
        ip: '10.1.1.20',
        groupIds: [APP, DEF],
      },
      {
        tap: 'mct00000000a',
        bridge: BR_A,
        mac: '52:54:00:00:00:0a',
        ip: '10.1.1.10',
        groupIds: [WEB],
      },
      {
        tap: 'mct00000000c',
        bridge: BR_A,
        mac: '52:54:00:00:00:0c',
        ip: '10.1.2.30',
        groupIds: [DEF, APP],
      },
      {
        tap: 'mct00000000d',
        bridge: BR_B,
        mac: '52:54:00:00:00:0d',
        ip: '10.2.0.40',
        groupIds: [OTHER],
      },
    ],
    hostServices: [
      { protocol: 'tcp', port: 80, address: '169.254.169.254' },
      { protocol: 'tcp', port: 8775 },
    ],
    ...over,
  };
}

function problemOf(fn: () => unknown): SecurityGroupProblem | string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(NetworkValidationError);
    expect((e as NetworkValidationError).code).toBe('InvalidParameterValue');
    // Errors of the address/name helpers are wrapped with context but keep their reason.
    const reason = (e as NetworkValidationError).reason;
    return e instanceof SecurityGroupValidationError && reason === 'InvalidNetworkSpec'
      ? e.problem
      : reason;
  }
  throw new Error('expected a validation error');
}

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

describe('validation', () => {
  const web = (m: SecurityGroupNetworkModel) => m.groups[0]!;
  const withWebIngress = (m: SecurityGroupNetworkModel, rule: Partial<SecurityGroupRuleModel>) => ({
    ...m,
    groups: [
      {
        ...web(m),
        ingress: [
          {
            ruleId: rid(),
            ipProtocol: 'tcp',
            fromPort: 1,
            toPort: 1,
            cidr: '10.0.0.0/8',
            ...rule,
          } as SecurityGroupRuleModel,
        ],
      },
      ...m.groups.slice(1),
    ],
  });
  const withPort = (m: SecurityGroupNetworkModel, over: Record<string, unknown>) => ({
    ...m,
    ports: [{ ...m.ports[0]!, ...over } as never, ...m.ports.slice(1)],
  });
  const cases: [
    string,
    (m: SecurityGroupNetworkModel) => unknown,
    SecurityGroupProblem | string,
  ][] = [
    [
      'unknown protocol',
      (m) => withWebIngress(m, { ipProtocol: 'gre' as never }),
      'InvalidProtocol',
    ],
    ['protocol number', (m) => withWebIngress(m, { ipProtocol: '6' as never }), 'InvalidProtocol'],
    [
      'protocol injection',
      (m) => withWebIngress(m, { ipProtocol: 'tcp accept;' as never }),
      'InvalidProtocol',
    ],
    ['port 70000', (m) => withWebIngress(m, { fromPort: 1, toPort: 70000 }), 'InvalidPortRange'],
    ['negative port', (m) => withWebIngress(m, { fromPort: -1, toPort: 10 }), 'InvalidPortRange'],
    [
      'fractional port',
      (m) => withWebIngress(m, { fromPort: 22.5, toPort: 23 }),
      'InvalidPortRange',
    ],
    [
      'port as text',
      (m) => withWebIngress(m, { fromPort: '22' as never, toPort: 22 }),
      'InvalidPortRange',
    ],
    [
      'missing ports',
      (m) => withWebIngress(m, { fromPort: undefined, toPort: undefined }),
      'InvalidPortRange',
    ],
    ['from > to', (m) => withWebIngress(m, { fromPort: 90, toPort: 80 }), 'InvalidPortRange'],
    [
      'ports on protocol -1',
      (m) => withWebIngress(m, { ipProtocol: '-1', fromPort: 22, toPort: 22 }),
      'InvalidPortRange',
    ],
    [
      'icmp type 256',
      (m) => withWebIngress(m, { ipProtocol: 'icmp', fromPort: 256, toPort: -1 }),
      'InvalidIcmpTypeCode',
    ],
    [
      'icmp code without type',
      (m) => withWebIngress(m, { ipProtocol: 'icmp', fromPort: -1, toPort: 0 }),
      'InvalidIcmpTypeCode',
    ],
    [
      'icmp code -2',
      (m) => withWebIngress(m, { ipProtocol: 'icmp', fromPort: 3, toPort: -2 }),
      'InvalidIcmpTypeCode',
    ],
    ['malformed CIDR', (m) => withWebIngress(m, { cidr: '10.0.0/8' }), 'InvalidCidr'],
    ['CIDR with host bits', (m) => withWebIngress(m, { cidr: '10.0.0.5/8' }), 'InvalidCidr'],
    ['CIDR /33', (m) => withWebIngress(m, { cidr: '10.0.0.0/33' }), 'InvalidCidr'],
    ['IPv6 CIDR', (m) => withWebIngress(m, { cidr: '::/0' }), 'InvalidCidr'],
    ['CIDR injection', (m) => withWebIngress(m, { cidr: '10.0.0.0/8 accept' }), 'InvalidCidr'],
    ['cidr and group', (m) => withWebIngress(m, { referencedGroupId: APP }), 'InvalidTarget'],
    ['neither cidr nor group', (m) => withWebIngress(m, { cidr: null }), 'InvalidTarget'],
    ['bad rule id', (m) => withWebIngress(m, { ruleId: 'sgr-1' }), 'InvalidRuleId'],
    [
      'rule id injection',
      (m) => withWebIngress(m, { ruleId: 'sgr-00000000000000001" accept' }),
      'InvalidRuleId',
    ],
    [
      'bad referenced group id',
      (m) => withWebIngress(m, { cidr: null, referencedGroupId: 'sg-x' }),
      'InvalidGroupId',
    ],
    [
      'unknown referenced group',
      (m) => withWebIngress(m, { cidr: null, referencedGroupId: 'sg-000000000000000ff' }),
      'UnknownGroup',
    ],
    [
      'referenced group of another VPC',
      (m) => withWebIngress(m, { cidr: null, referencedGroupId: OTHER }),
      'GroupVpcMismatch',
    ],
    [
      '61 ingress rules',
      (m) => ({
        ...m,
        groups: [
          {
            ...web(m),
            ingress: Array.from({ length: 61 }, () => ({
              ruleId: rid(),
              ipProtocol: 'tcp' as const,
              fromPort: 1,
              toPort: 1,
              cidr: '10.0.0.0/8',
            })),
          },
          ...m.groups.slice(1),
        ],
      }),
      'TooManyRules',
    ],
    [
      'rule id twice in one group',
      (m) => ({
        ...m,
        groups: [
          { ...web(m), egress: [...web(m).egress, web(m).egress[0]!] },
          ...m.groups.slice(1),
        ],
      }),
      'Duplicate',
    ],
    [
      'rule id in two groups',
      (m) => ({
        ...m,
        groups: [web(m), { ...m.groups[1]!, egress: web(m).egress }, ...m.groups.slice(2)],
      }),
      'Duplicate',
    ],
    [
      'bad group id',
      (m) => ({ ...m, groups: [{ ...web(m), groupId: 'sg-0000000000000000A' }] }),
      'InvalidGroupId',
    ],
    ['group twice', (m) => ({ ...m, groups: [...m.groups, web(m)] }), 'Duplicate'],
    [
      'bad group VPC',
      (m) => ({ ...m, groups: [{ ...web(m), vpcId: 'vpc-1" accept' }, ...m.groups.slice(1)] }),
      'InvalidName',
    ],
    [
      'rules not an array',
      (m) => ({ ...m, groups: [{ ...web(m), ingress: 'all' as never }, ...m.groups.slice(1)] }),
      'InvalidModel',
    ],
    [
      'six groups on a port',
      (m) =>
        withPort(m, {
          groupIds: [
            WEB,
            APP,
            DEF,
            'sg-000000000000000e1',
            'sg-000000000000000e2',
            'sg-000000000000000e3',
          ],
        }),
      'TooManyGroups',
    ],
    ['no group on a port', (m) => withPort(m, { groupIds: [] }), 'TooManyGroups'],
    ['group twice on a port', (m) => withPort(m, { groupIds: [APP, APP] }), 'Duplicate'],
    [
      'unknown group on a port',
      (m) => withPort(m, { groupIds: ['sg-000000000000000ff'] }),
      'UnknownGroup',
    ],
    [
      'group of another VPC on a port',
      (m) => withPort(m, { groupIds: [OTHER] }),
      'GroupVpcMismatch',
    ],
    ['tap injection', (m) => withPort(m, { tap: 'mct0" accept' }), 'InvalidName'],
    ['tap too long', (m) => withPort(m, { tap: 'mct0123456789abc' }), 'InvalidName'],
    ['bridge injection', (m) => withPort(m, { bridge: 'mcv"; flush ruleset' }), 'InvalidName'],
    ['unknown bridge', (m) => withPort(m, { bridge: 'mcvffffffff0' }), 'UnknownBridge'],
    ['bad MAC', (m) => withPort(m, { mac: '52:54:00:00:00' }), 'InvalidMacAddress'],
    ['multicast MAC', (m) => withPort(m, { mac: '01:00:5e:00:00:01' }), 'InvalidMacAddress'],
    ['bad IP', (m) => withPort(m, { ip: '10.1.1.256' }), 'InvalidIpAddress'],
    ['IP of another port', (m) => withPort(m, { ip: '10.1.1.10' }), 'Duplicate'],
    ['IP of a router', (m) => withPort(m, { ip: '10.1.1.1' }), 'Duplicate'],
    ['MAC twice on a bridge', (m) => withPort(m, { mac: '52:54:00:00:00:0A' }), 'Duplicate'],
    ['port twice', (m) => ({ ...m, ports: [...m.ports, m.ports[0]!] }), 'Duplicate'],
    ['bad prefix', (m) => ({ ...m, prefix: 'MC' }), 'InvalidName'],
    ['prefix injection', (m) => ({ ...m, prefix: 'mc_sg; flush ruleset' }), 'InvalidName'],
    ['bad tapPrefix', (m) => ({ ...m, tapPrefix: 'mc*' }), 'InvalidName'],
    [
      'bad bridge VPC',
      (m) => ({ ...m, bridges: [{ ...m.bridges[0]!, vpcId: 'vpc-x' }, m.bridges[1]!] }),
      'InvalidName',
    ],
    [
      'bad router IP',
      (m) => ({ ...m, bridges: [{ ...m.bridges[0]!, routerIps: ['10.2.0.1/24'] }, m.bridges[1]!] }),
      'InvalidIpAddress',
    ],
    [
      'router IP on two bridges',
      (m) => ({ ...m, bridges: [{ ...m.bridges[0]!, routerIps: ['10.1.1.1'] }, m.bridges[1]!] }),
      'Duplicate',
    ],
    ['bridge twice', (m) => ({ ...m, bridges: [m.bridges[0]!, m.bridges[0]!] }), 'Duplicate'],
    [
      'host service protocol',
      (m) => ({ ...m, hostServices: [{ protocol: 'icmp' as never, port: 1 }] }),
      'InvalidProtocol',
    ],
    [
      'host service port 0',
      (m) => ({ ...m, hostServices: [{ protocol: 'tcp', port: 0 }] }),
      'InvalidPortRange',
    ],
    [
      'host service address',
      (m) => ({ ...m, hostServices: [{ protocol: 'tcp', port: 80, address: 'metadata' }] }),
      'InvalidIpAddress',
    ],
    [
      'allowRouterPing not boolean',
      (m) => ({ ...m, allowRouterPing: 'yes' as never }),
      'InvalidModel',
    ],
    ['model not an object', () => null, 'InvalidModel'],
  ];
  test.each(cases)('%s', (_name, change, problem) => {
    expect(
      problemOf(() => renderSecurityGroups(change(model()) as SecurityGroupNetworkModel)),
    ).toBe(problem);
  });

  test('the error names the rule and keeps the reason of the address helpers', () => {
    try {
      renderSecurityGroups(
        withWebIngress(model(), { ruleId: 'sgr-000000000000000aa', cidr: '300.0.0.0/8' }),
      );
      throw new Error('no error');
    } catch (e) {
      expect(e).toBeInstanceOf(SecurityGroupValidationError);
      const err = e as SecurityGroupValidationError;
      expect(err.reason).toBe('InvalidCidr');
      expect(err.problem).toBe('InvalidTarget');
      expect(err.message).toContain(`${WEB} ingress rule sgr-000000000000000aa`);
      expect(err.status).toBe(400);
    }
  });

  test('60 rules per direction and 5 groups per port are fine', () => {
    const m = model();
    const many = Array.from({ length: 60 }, () => ({
      ruleId: rid(),
      ipProtocol: 'tcp' as const,
      fromPort: 1,
      toPort: 1,
      cidr: '10.0.0.0/8',
    }));
    const extra = ['sg-000000000000000e1', 'sg-000000000000000e2'].map((groupId) => ({
      groupId,
      vpcId: VPC_A,
      ingress: [],
      egress: [],
    }));
    const ok = {
      ...m,
      groups: [
        { ...web(m), ingress: many, egress: many.map((r) => ({ ...r, ruleId: rid() })) },
        ...m.groups.slice(1),
        ...extra,
      ],
      ports: [
        { ...m.ports[0]!, groupIds: [APP, DEF, WEB, ...extra.map((g) => g.groupId)] },
        ...m.ports.slice(1),
      ],
    };
    const plan = planSecurityGroups(ok);
    expect(plan.groups[0]!.ingress).toHaveLength(60);
    expect(plan.ports.find((p) => p.tap === 'mct00000000b')!.groupIds).toHaveLength(5);
  });
});

describe('incremental updates', () => {
  const state = (m = model()) => securityGroupStateFromPlan(planSecurityGroups(m));
  /** The state of applying `changes` must equal the state of the full model `expected`. */
  const agrees = (
    s: SecurityGroupState,
    changes: SecurityGroupChanges,
    expected: SecurityGroupNetworkModel,
  ) => {
    const u = planSecurityGroupUpdate(s, changes);
    const norm = (x: SecurityGroupState) =>
      JSON.stringify(x, (_k, v: unknown) =>
        v instanceof Map ? [...v.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1)) : v,
      );
    expect(norm(u.next)).toBe(norm(state(expected)));
    return u;
  };

  test("change an instance's groups: map elements, set elements, combination chains added and dropped", () => {
    const m = model();
    const expected = model({
      ports: m.ports.map((p) => (p.tap === 'mct00000000a' ? { ...p, groupIds: [WEB, APP] } : p)),
    });
    const u = agrees(
      state(),
      { memberships: [{ tap: 'mct00000000a', groupIds: [APP, WEB] }] },
      expected,
    );
    expect(u.script).toBe(`delete element inet mc_sg egress_ports { "mcv0a0a0a0a0" . 10.1.1.10 }
delete element inet mc_sg ingress_ports { "mcv0a0a0a0a0" . 10.1.1.10 }
flush chain inet mc_sg c_0000000000000000a_in
delete chain inet mc_sg c_0000000000000000a_in
flush chain inet mc_sg c_0000000000000000a_out
delete chain inet mc_sg c_0000000000000000a_out
add chain inet mc_sg c_0000000000000000a_0000000000000000b_in
add rule inet mc_sg c_0000000000000000a_0000000000000000b_in jump g_0000000000000000a_in
add rule inet mc_sg c_0000000000000000a_0000000000000000b_in jump g_0000000000000000b_in
add rule inet mc_sg c_0000000000000000a_0000000000000000b_in counter drop
add chain inet mc_sg c_0000000000000000a_0000000000000000b_out
add rule inet mc_sg c_0000000000000000a_0000000000000000b_out jump g_0000000000000000a_out
add rule inet mc_sg c_0000000000000000a_0000000000000000b_out jump g_0000000000000000b_out
add rule inet mc_sg c_0000000000000000a_0000000000000000b_out counter drop
add element inet mc_sg egress_ports { "mcv0a0a0a0a0" . 10.1.1.10 : jump c_0000000000000000a_0000000000000000b_out }
add element inet mc_sg ingress_ports { "mcv0a0a0a0a0" . 10.1.1.10 : jump c_0000000000000000a_0000000000000000b_in }
add element inet mc_sg sg_0000000000000000b { 10.1.1.10 }
`);
  });

  test('a launch into an existing combination is element adds only; terminate is element deletes', () => {
    const m = model();
    const port = {
      tap: 'mct00000000e',
      bridge: BR_A,
      mac: '52:54:00:00:00:0e',
      ip: '10.1.2.50',
      groupIds: [DEF, APP],
    };
    const launched = agrees(state(), { ports: [port] }, model({ ports: [...m.ports, port] }));
    expect(launched.script)
      .toBe(`add element inet mc_sg egress_ports { "mcv0a0a0a0a0" . 10.1.2.50 : jump c_0000000000000000b_0000000000000000c_out }
add element inet mc_sg ingress_ports { "mcv0a0a0a0a0" . 10.1.2.50 : jump c_0000000000000000b_0000000000000000c_in }
add element inet mc_sg sg_0000000000000000b { 10.1.2.50 }
add element inet mc_sg sg_0000000000000000c { 10.1.2.50 }
add element bridge mc_sgb port_addrs { "mct00000000e" . 52:54:00:00:00:0e . 10.1.2.50 }
add element bridge mc_sgb port_ips { "mct00000000e" . 10.1.2.50 }
add element bridge mc_sgb port_macs { "mct00000000e" . 52:54:00:00:00:0e }
add element bridge mc_sgb ports { "mct00000000e" }
`);
    const terminated = agrees(launched.next, { removePorts: ['mct00000000e'] }, m);
    expect(terminated.script).not.toMatch(/chain|add /);
    expect(terminated.script.split('\n').filter(Boolean)).toHaveLength(8);
    // the last port of a combination takes its chains along
    const last = planSecurityGroupUpdate(state(), { removePorts: ['mct00000000d'] });
    expect(last.script).toContain('delete chain inet mc_sg c_0000000000000000d_in\n');
    expect(last.summary.chainsRemoved).toBe(2);
  });

  test("a rule change flushes and refills the group's chains only", () => {
    const m = model();
    const app = {
      ...m.groups[1]!,
      egress: [
        {
          ruleId: 'sgr-000000000000000f1',
          ipProtocol: 'tcp' as const,
          fromPort: 443,
          toPort: 443,
          cidr: '0.0.0.0/0',
        },
      ],
    };
    const u = agrees(
      state(),
      { groups: [app] },
      model({ groups: [m.groups[0]!, app, ...m.groups.slice(2)] }),
    );
    expect(u.script).toBe(`flush chain inet mc_sg g_0000000000000000b_in
flush chain inet mc_sg g_0000000000000000b_out
add rule inet mc_sg g_0000000000000000b_out ip daddr 0.0.0.0/0 tcp dport 443 accept comment "sgr-000000000000000f1"
`);
    expect(u.summary.groupsRulesReplaced).toEqual([APP]);
  });

  test('a new group referenced by a changed group, and a group removed in the same transaction', () => {
    const m = model();
    const NEW = 'sg-000000000000000e0';
    const newGroup = { groupId: NEW, vpcId: VPC_B, ingress: [], egress: [] };
    const other = {
      ...m.groups[3]!,
      ingress: [
        {
          ruleId: 'sgr-000000000000000f2',
          ipProtocol: 'udp' as const,
          fromPort: 1,
          toPort: 9,
          referencedGroupId: NEW,
        },
      ],
    };
    const d = { ...m.ports[3]!, groupIds: [NEW, OTHER] };
    const s1 = agrees(
      state(),
      { groups: [newGroup, other], ports: [d] },
      model({
        groups: [...m.groups.slice(0, 3), other, newGroup],
        ports: [...m.ports.slice(0, 3), d],
      }),
    );
    expect(
      s1.script.indexOf(
        `add set inet mc_sg sg_000000000000000e0 { type ipv4_addr; comment "${VPC_B}"; }`,
      ),
    ).toBeLessThan(
      s1.script.indexOf(
        'add rule inet mc_sg g_0000000000000000d_in ip saddr @sg_000000000000000e0',
      ),
    );
    // removing NEW while OTHER's rule references it is refused
    const d2 = { ...d, groupIds: [OTHER] };
    expect(
      problemOf(() => planSecurityGroupUpdate(s1.next, { removeGroups: [NEW], ports: [d2] })),
    ).toBe('UnknownGroup');
    // with the rule gone as well, it works: rules flushed before the set is deleted
    const s2 = agrees(s1.next, { removeGroups: [NEW], ports: [d2], groups: [m.groups[3]!] }, m);
    const lines = s2.script.split('\n');
    expect(lines.indexOf('flush chain inet mc_sg g_0000000000000000d_in')).toBeLessThan(
      lines.indexOf('delete set inet mc_sg sg_000000000000000e0'),
    );
    expect(
      lines.indexOf('delete chain inet mc_sg c_0000000000000000d_000000000000000e0_in'),
    ).toBeLessThan(lines.indexOf('delete chain inet mc_sg g_000000000000000e0_in'));
    expect(s2.summary.groupsRemoved).toEqual([NEW]);
  });

  test('bridges: a new VPC bridge is element adds', () => {
    const b = { bridge: 'mcv0c0c0c0c0', vpcId: 'vpc-0c0c0c0c0c0c0c0c0', routerIps: ['10.3.0.1'] };
    const u = agrees(state(), { bridges: [b] }, model({ bridges: [...model().bridges, b] }));
    expect(u.script)
      .toBe(`add element inet mc_sg bridges { "mcv0c0c0c0c0" comment "vpc-0c0c0c0c0c0c0c0c0" }
add element inet mc_sg router_addrs { "mcv0c0c0c0c0" . 10.3.0.1 }
`);
    expect(problemOf(() => planSecurityGroupUpdate(state(), { removeBridges: [BR_B] }))).toBe(
      'UnknownBridge',
    );
  });

  test('nothing to do is an empty script; the same change twice is a no-op', () => {
    expect(renderSecurityGroupUpdate(state(), {})).toBe('');
    const m = model();
    expect(
      renderSecurityGroupUpdate(state(), { ports: [m.ports[0]!], removePorts: ['mct0000000ff'] }),
    ).toBe('');
  });

  const bad: [string, SecurityGroupChanges, SecurityGroupProblem | string][] = [
    [
      'membership of an unknown port',
      { memberships: [{ tap: 'mct0000000ff', groupIds: [APP] }] },
      'UnknownPort',
    ],
    [
      'six groups',
      {
        memberships: [
          {
            tap: 'mct00000000a',
            groupIds: ['a', 'b', 'c', 'd', 'e', 'f'].map((c) => `sg-0000000000000000${c}`),
          },
        ],
      },
      'TooManyGroups',
    ],
    [
      'group of another VPC',
      { memberships: [{ tap: 'mct00000000a', groupIds: [OTHER] }] },
      'GroupVpcMismatch',
    ],
    ['removing a group in use', { removeGroups: [WEB] }, 'UnknownGroup'],
    [
      'a group changing VPC',
      { groups: [{ groupId: APP, vpcId: VPC_B, ingress: [], egress: [] }] },
      'GroupVpcMismatch',
    ],
    [
      'upsert and remove',
      { ports: [model().ports[0]!], removePorts: [model().ports[0]!.tap] },
      'InvalidModel',
    ],
    [
      'bad rule',
      {
        groups: [
          {
            groupId: APP,
            vpcId: VPC_A,
            ingress: [
              { ruleId: rid(), ipProtocol: 'tcp', fromPort: 80, toPort: 70000, cidr: '10.0.0.0/8' },
            ],
            egress: [],
          },
        ],
      },
      'InvalidPortRange',
    ],
    ['tap injection', { removePorts: ['mct"; flush ruleset'] }, 'InvalidName'],
    ['not an array', { ports: 'x' as never }, 'InvalidModel'],
  ];
  test.each(bad)('refused: %s', (_name, changes, problem) => {
    expect(problemOf(() => planSecurityGroupUpdate(state(), changes))).toBe(problem);
  });
});

describe('parseSecurityGroupState', () => {
  /** The shape `nft -j list table` prints (checked against nft 1.0.6). */
  function nftJson(s: SecurityGroupState): { inet: string; bridge: string } {
    const plan = planSecurityGroups(model());
    const inet: unknown[] = [
      { metainfo: { version: '1.0.6' } },
      { table: { family: 'inet', name: 'mc_sg' } },
      {
        set: {
          name: 'bridges',
          type: 'ifname',
          elem: [...s.bridges].map(([b, v]) => ({ elem: { val: b, comment: v.vpcId } })),
        },
      },
      {
        set: {
          name: 'router_addrs',
          type: ['ifname', 'ipv4_addr'],
          elem: [...s.bridges].flatMap(([b, v]) => v.routerIps.map((ip) => ({ concat: [b, ip] }))),
        },
      },
      ...plan.groups.map((g) => ({
        set: {
          name: `sg_${g.groupId.slice(3)}`,
          type: 'ipv4_addr',
          comment: g.vpcId,
          elem: g.members,
        },
      })),
      {
        map: {
          name: 'egress_ports',
          map: 'verdict',
          elem: [...s.ports.values()].map((p) => [
            { concat: [p.bridge, p.ip] },
            { jump: { target: sgComboChainName(p.groupIds, 'out') } },
          ]),
        },
      },
      ...plan.groups.map((g) => ({ chain: { name: `g_${g.groupId.slice(3)}_in` } })),
      // the default group's self reference, as nft prints a set lookup
      {
        rule: {
          chain: 'g_0000000000000000c_in',
          expr: [
            {
              match: {
                op: '==',
                left: { payload: { protocol: 'ip', field: 'saddr' } },
                right: '@sg_0000000000000000c',
              },
            },
            { accept: null },
          ],
        },
      },
      {
        rule: {
          chain: 'g_0000000000000000a_in',
          expr: [
            {
              match: {
                op: '==',
                left: { payload: { protocol: 'ip', field: 'saddr' } },
                right: '@sg_0000000000000000b',
              },
            },
            {
              match: {
                op: '==',
                left: { payload: { protocol: 'tcp', field: 'dport' } },
                right: 8080,
              },
            },
            { accept: null },
          ],
        },
      },
    ];
    const bridge: unknown[] = [
      { table: { family: 'bridge', name: 'mc_sgb' } },
      {
        set: {
          name: 'port_addrs',
          type: ['ifname', 'ether_addr', 'ipv4_addr'],
          elem: [...s.ports.values()].map((p) => ({ concat: [p.tap, p.mac, p.ip] })),
        },
      },
    ];
    return {
      inet: JSON.stringify({ nftables: inet }),
      bridge: JSON.stringify({ nftables: bridge }),
    };
  }

  test('reads back the state the plan had', () => {
    const s = securityGroupStateFromPlan(planSecurityGroups(model()));
    const j = nftJson(s);
    const back = parseSecurityGroupState('mc', j.inet, j.bridge)!;
    expect(back).not.toBeNull();
    expect([...back.ports.values()].sort((a, b) => (a.tap < b.tap ? -1 : 1))).toEqual([
      ...s.ports.values(),
    ]);
    expect(Object.fromEntries(back.groups)).toEqual(Object.fromEntries(s.groups));
    expect(Object.fromEntries(back.bridges)).toEqual(Object.fromEntries(s.bridges));
    // and an update planned from it is the same as from the plan
    const change = { memberships: [{ tap: 'mct00000000a', groupIds: [WEB, APP] }] };
    expect(renderSecurityGroupUpdate(back, change)).toBe(renderSecurityGroupUpdate(s, change));
  });

  test('null for tables without our sets', () => {
    const empty = JSON.stringify({ nftables: [{ table: { name: 'mc_sg' } }] });
    expect(parseSecurityGroupState('mc', empty, empty)).toBeNull();
  });
});
