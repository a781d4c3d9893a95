import { NetworkValidationError } from '@minicloud/domain';
import {
  planVpcRuleset,
  renderVpcRuleset,
  renderVpcRulesetRemoval,
  type VpcNetworkModel,
} from '@minicloud/network';

const VPC_A = 'vpc-0a0a0a0a0a0a0a0a0';
const VPC_B = 'vpc-0b0b0b0b0b0b0b0b0';
const VPC_C = 'vpc-0c0c0c0c0c0c0c0c0';

function model(over: Partial<VpcNetworkModel> = {}): VpcNetworkModel {
  return {
    table: 'mc_vpc',
    uplink: 'eth0',
    vpcs: [
      {
        vpcId: VPC_B,
        bridge: 'mcv0b0b0b0b0',
        cidr: '10.2.0.0/16',
        subnets: [
          { subnetId: 'subnet-0b0000000000000b1', cidr: '10.2.0.0/24', gatewayIp: '10.2.0.1' },
        ],
        internetGateway: false,
      },
      {
        vpcId: VPC_A,
        bridge: 'mcv0a0a0a0a0',
        cidr: '10.1.0.0/16',
        subnets: [
          { subnetId: 'subnet-0a0000000000000a2', cidr: '10.1.2.0/24', gatewayIp: '10.1.2.1' },
          { subnetId: 'subnet-0a0000000000000a1', cidr: '10.1.1.0/24', gatewayIp: '10.1.1.1' },
        ],
        internetGateway: true,
      },
    ],
    elasticIps: [
      { publicIp: '198.51.100.11', privateIp: null },
      { publicIp: '198.51.100.12', privateIp: '10.2.0.5', vpcId: VPC_B },
      { publicIp: '198.51.100.10', privateIp: '10.1.1.5', vpcId: VPC_A },
      { publicIp: '198.51.100.9', privateIp: '10.1.2.7', vpcId: VPC_A },
    ],
    ...over,
  };
}

describe('renderVpcRuleset', () => {
  test('golden: two VPCs (one with an internet gateway), active, inactive and unassociated Elastic IPs', () => {
    expect(renderVpcRuleset(model())).toBe(`table ip mc_vpc {}
delete table ip mc_vpc
table ip mc_vpc {
\t# every VPC bridge
\tset bridges {
\t\ttype ifname
\t\telements = { "mcv0a0a0a0a0", "mcv0b0b0b0b0" }
\t}
\t# bridges of VPCs with an internet gateway
\tset igw_bridges {
\t\ttype ifname
\t\telements = { "mcv0a0a0a0a0" }
\t}
\t# inside one VPC
\tset intra {
\t\ttype ifname . ifname
\t\telements = { "mcv0a0a0a0a0" . "mcv0a0a0a0a0", "mcv0b0b0b0b0" . "mcv0b0b0b0b0" }
\t}
\t# the addresses a VPC bridge may send from
\tset vpc_nets {
\t\ttype ifname . ipv4_addr
\t\tflags interval
\t\telements = { "mcv0a0a0a0a0" . 10.1.0.0/16, "mcv0b0b0b0b0" . 10.2.0.0/16 }
\t}
\t# VPCs with an internet gateway
\tset igw_nets {
\t\ttype ipv4_addr
\t\tflags interval
\t\telements = { 10.1.0.0/16 }
\t}
\t# host addresses each VPC may reach (its routers, DHCP, DNS)
\tset router_addrs {
\t\ttype ifname . ipv4_addr
\t\telements = { "mcv0a0a0a0a0" . 10.1.1.1, "mcv0a0a0a0a0" . 10.1.2.1, "mcv0b0b0b0b0" . 10.2.0.1 }
\t}
\t# Elastic IPs held on the uplink
\tset eip_held {
\t\ttype ipv4_addr
\t\telements = { 198.51.100.9, 198.51.100.10, 198.51.100.11, 198.51.100.12 }
\t}
\t# Elastic IP -> private address
\tmap eip_dnat {
\t\ttype ipv4_addr : ipv4_addr
\t\telements = { 198.51.100.9 : 10.1.2.7, 198.51.100.10 : 10.1.1.5 }
\t}
\t# private address -> Elastic IP
\tmap eip_snat {
\t\ttype ipv4_addr : ipv4_addr
\t\telements = { 10.1.1.5 : 198.51.100.10, 10.1.2.7 : 198.51.100.9 }
\t}
\tchain prerouting {
\t\ttype nat hook prerouting priority dstnat; policy accept;
\t\tiifname "eth0" ip daddr @eip_dnat counter dnat to ip daddr map @eip_dnat
\t\tiifname @igw_bridges ip daddr @eip_dnat counter dnat to ip daddr map @eip_dnat
\t}
\tchain output {
\t\ttype nat hook output priority -100; policy accept;
\t\tdnat to ip daddr map @eip_dnat
\t}
\tchain postrouting {
\t\ttype nat hook postrouting priority srcnat; policy accept;
\t\toifname "eth0" ip saddr @eip_snat counter snat to ip saddr map @eip_snat
\t\toifname "eth0" ip saddr @igw_nets counter masquerade
\t\toifname @bridges ct status dnat ip saddr @eip_snat counter snat to ip saddr map @eip_snat
\t\toifname @bridges ct status dnat ip saddr @igw_nets counter masquerade
\t}
\tchain forward {
\t\ttype filter hook forward priority filter; policy accept;
\t\tiifname @bridges iifname . ip saddr != @vpc_nets counter drop
\t\tiifname . oifname @intra accept
\t\toifname @igw_bridges ct status dnat iifname "eth0" accept
\t\toifname @igw_bridges ct status dnat iifname @igw_bridges accept
\t\tiifname @igw_bridges oifname "eth0" accept
\t\tiifname "eth0" oifname @igw_bridges ct state established,related accept
\t\tiifname @bridges counter drop
\t\toifname @bridges counter drop
\t}
\tchain input {
\t\ttype filter hook input priority filter; policy accept;
\t\tct state established,related accept
\t\tip daddr @eip_held counter drop
\t\tiifname @bridges fib daddr type local iifname . ip daddr != @router_addrs counter drop
\t}
}
`);
  });

  test('notes say which Elastic IPs are inactive and why', () => {
    expect(planVpcRuleset(model()).notes).toEqual([
      `Elastic IP 198.51.100.12 -> 10.2.0.5 is inactive: ${VPC_B} has no internet gateway`,
    ]);
  });

  test('no uplink: no NAT rules at all, every association inactive, isolation stays', () => {
    const m = model({ uplink: null });
    const script = renderVpcRuleset(m);
    expect(script).not.toMatch(/masquerade|snat to|dnat to|oifname "/);
    expect(script).toContain('\t\tiifname @bridges counter drop');
    expect(script).toContain('set igw_bridges {\n\t\ttype ifname\n\t}'); // empty: no elements line
    const plan = planVpcRuleset(m);
    expect(plan.eipDnat).toEqual([]);
    expect(plan.eipHeld).toHaveLength(4);
    expect(plan.notes).toContain(`${VPC_A} has an internet gateway but the host has no uplink`);
  });

  test('an empty model is an empty, valid table skeleton', () => {
    const script = renderVpcRuleset({ table: 'mc_vpc', uplink: 'eth0', vpcs: [], elasticIps: [] });
    expect(script).not.toContain('elements');
    expect(script).toContain('chain forward {');
  });

  test('the same model in any order renders the same bytes', () => {
    const m = model();
    const shuffled = model({
      vpcs: [...m.vpcs].reverse().map((v) => ({ ...v, subnets: [...v.subnets].reverse() })),
      elasticIps: [...m.elasticIps].reverse(),
    });
    expect(renderVpcRuleset(shuffled)).toBe(renderVpcRuleset(m));
  });

  test('no chain is called fwd (an nft keyword)', () => {
    expect(renderVpcRuleset(model())).not.toMatch(/chain fwd\b/);
  });

  const bad: [string, (m: VpcNetworkModel) => VpcNetworkModel][] = [
    ['bad table name', (m) => ({ ...m, table: 'mc-vpc' })],
    ['table injection', (m) => ({ ...m, table: 'mc_vpc; flush ruleset' })],
    ['uplink injection', (m) => ({ ...m, uplink: 'eth0" accept' })],
    ['uplink is a VPC bridge', (m) => ({ ...m, uplink: 'mcv0a0a0a0a0' })],
    ['bad vpc id', (m) => ({ ...m, vpcs: [{ ...m.vpcs[0]!, vpcId: 'vpc-1' }] })],
    ['vpc twice', (m) => ({ ...m, vpcs: [m.vpcs[0]!, { ...m.vpcs[0]!, bridge: 'mcvx' }] })],
    [
      'bridge twice',
      (m) => ({ ...m, vpcs: [m.vpcs[0]!, { ...m.vpcs[1]!, bridge: m.vpcs[0]!.bridge }] }),
    ],
    ['bridge injection', (m) => ({ ...m, vpcs: [{ ...m.vpcs[0]!, bridge: 'mc" accept' }] })],
    [
      'overlapping VPCs',
      (m) => ({
        ...m,
        vpcs: [m.vpcs[0]!, { ...m.vpcs[1]!, cidr: '10.2.128.0/17', subnets: [] }],
        elasticIps: [],
      }),
    ],
    ['malformed VPC CIDR', (m) => ({ ...m, vpcs: [{ ...m.vpcs[0]!, cidr: '10.2.0.1/16' }] })],
    [
      'subnet outside its VPC',
      (m) => ({
        ...m,
        vpcs: [
          {
            ...m.vpcs[0]!,
            subnets: [
              { subnetId: 'subnet-0b0000000000000b1', cidr: '10.3.0.0/24', gatewayIp: '10.3.0.1' },
            ],
          },
        ],
        elasticIps: [],
      }),
    ],
    [
      'overlapping subnets',
      (m) => ({
        ...m,
        vpcs: [
          {
            ...m.vpcs[1]!,
            subnets: [
              { subnetId: 'subnet-0a0000000000000a1', cidr: '10.1.0.0/23', gatewayIp: '10.1.0.1' },
              { subnetId: 'subnet-0a0000000000000a2', cidr: '10.1.1.0/24', gatewayIp: '10.1.1.1' },
            ],
          },
        ],
        elasticIps: [],
      }),
    ],
    [
      'gateway outside its subnet',
      (m) => ({
        ...m,
        vpcs: [
          {
            ...m.vpcs[0]!,
            subnets: [
              { subnetId: 'subnet-0b0000000000000b1', cidr: '10.2.0.0/24', gatewayIp: '10.2.1.1' },
            ],
          },
        ],
        elasticIps: [],
      }),
    ],
    [
      'subnet id twice',
      (m) => ({
        ...m,
        vpcs: [
          m.vpcs[0]!,
          {
            ...m.vpcs[1]!,
            subnets: [{ ...m.vpcs[1]!.subnets[0]!, subnetId: 'subnet-0b0000000000000b1' }],
          },
        ],
        elasticIps: [],
      }),
    ],
    [
      'Elastic IP twice',
      (m) => ({
        ...m,
        elasticIps: [...m.elasticIps, { publicIp: '198.51.100.11', privateIp: null }],
      }),
    ],
    [
      'Elastic IP inside a VPC',
      (m) => ({ ...m, elasticIps: [{ publicIp: '10.1.200.1', privateIp: null }] }),
    ],
    [
      'malformed Elastic IP',
      (m) => ({ ...m, elasticIps: [{ publicIp: '198.51.100.256', privateIp: null }] }),
    ],
    [
      'one private address, two Elastic IPs',
      (m) => ({
        ...m,
        elasticIps: [
          ...m.elasticIps,
          { publicIp: '198.51.100.20', privateIp: '10.1.1.5', vpcId: VPC_A },
        ],
      }),
    ],
    [
      'associated without vpcId',
      (m) => ({ ...m, elasticIps: [{ publicIp: '198.51.100.20', privateIp: '10.1.1.5' }] }),
    ],
    [
      'unknown VPC',
      (m) => ({
        ...m,
        elasticIps: [{ publicIp: '198.51.100.20', privateIp: '10.1.1.5', vpcId: VPC_C }],
      }),
    ],
    [
      'private address outside every subnet of the VPC',
      (m) => ({
        ...m,
        elasticIps: [{ publicIp: '198.51.100.20', privateIp: '10.1.3.5', vpcId: VPC_A }],
      }),
    ],
    [
      'private address in another VPC',
      (m) => ({
        ...m,
        elasticIps: [{ publicIp: '198.51.100.20', privateIp: '10.2.0.5', vpcId: VPC_A }],
      }),
    ],
    [
      'private address is a router',
      (m) => ({
        ...m,
        elasticIps: [{ publicIp: '198.51.100.20', privateIp: '10.1.1.1', vpcId: VPC_A }],
      }),
    ],
  ];
  test.each(bad)('refused: %s', (_what, change) => {
    expect(() => renderVpcRuleset(change(model()))).toThrow(NetworkValidationError);
  });

  test('VPCs that only touch do not overlap', () => {
    const m = model({
      vpcs: [
        { ...model().vpcs[0]!, cidr: '10.2.0.0/16' },
        { ...model().vpcs[1]!, cidr: '10.1.0.0/16' },
      ],
    });
    expect(() => renderVpcRuleset(m)).not.toThrow();
  });

  test('removal script deletes the table if it is there', () => {
    expect(renderVpcRulesetRemoval('mc_vpc')).toBe('table ip mc_vpc {}\ndelete table ip mc_vpc\n');
    expect(() => renderVpcRulesetRemoval('mc vpc')).toThrow(NetworkValidationError);
  });
});
