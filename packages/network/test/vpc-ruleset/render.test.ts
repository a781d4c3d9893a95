import { NetworkValidationError } from '@minicloud/domain';
import { planVpcRuleset, renderVpcRuleset, renderVpcRulesetRemoval } from '@minicloud/network';
import { VPC_A, model } from './fixtures.js';

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

  test('removal script deletes the table if it is there', () => {
    expect(renderVpcRulesetRemoval('mc_vpc')).toBe('table ip mc_vpc {}\ndelete table ip mc_vpc\n');
    expect(() => renderVpcRulesetRemoval('mc vpc')).toThrow(NetworkValidationError);
  });
});
