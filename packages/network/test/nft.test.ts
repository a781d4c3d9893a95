import { NetworkValidationError } from '@minicloud/domain';
import {
  natChainNames,
  renderNatNetworkRemoval,
  renderNatNetworkUpdate,
  renderNatRuleset,
} from '@minicloud/network';

describe('renderNatRuleset', () => {
  test('golden: two networks, one with an uplink, one host-only (sorted by bridge)', () => {
    expect(
      renderNatRuleset('mc_nat', [
        { bridge: 'mcbr1', cidr: '10.12.0.0/24', uplink: null },
        { bridge: 'mcbr0', cidr: '10.11.0.0/24', uplink: 'eth0' },
      ]),
    ).toBe(`table ip mc_nat {}
delete table ip mc_nat
table ip mc_nat {
\tchain postrouting_mcbr0 {
\t\ttype nat hook postrouting priority srcnat; policy accept;
\t\toifname "eth0" ip saddr 10.11.0.0/24 counter masquerade
\t}
\tchain forward_mcbr0 {
\t\ttype filter hook forward priority filter; policy accept;
\t\tiifname "mcbr0" oifname "mcbr0" accept
\t\tiifname "mcbr0" ip saddr != 10.11.0.0/24 counter drop
\t\tiifname "mcbr0" oifname "eth0" accept
\t\tiifname "eth0" oifname "mcbr0" ct state established,related accept
\t\tiifname "mcbr0" counter drop
\t\toifname "mcbr0" counter drop
\t}
\tchain postrouting_mcbr1 {
\t\ttype nat hook postrouting priority srcnat; policy accept;
\t}
\tchain forward_mcbr1 {
\t\ttype filter hook forward priority filter; policy accept;
\t\tiifname "mcbr1" oifname "mcbr1" accept
\t\tiifname "mcbr1" ip saddr != 10.12.0.0/24 counter drop
\t\tiifname "mcbr1" counter drop
\t\toifname "mcbr1" counter drop
\t}
}
`);
  });

  test('no networks: an empty table', () => {
    expect(renderNatRuleset('mc_nat', [])).toBe(
      'table ip mc_nat {}\ndelete table ip mc_nat\ntable ip mc_nat {\n}\n',
    );
  });

  test('no chain is called fwd (an nft keyword)', () => {
    const script = renderNatRuleset('mc_nat', [
      { bridge: 'mcbr0', cidr: '10.11.0.0/24', uplink: 'eth0' },
    ]);
    expect(script).not.toMatch(/chain fwd\b/);
    expect(Object.values(natChainNames('mcbr0'))).toEqual(['postrouting_mcbr0', 'forward_mcbr0']);
  });

  test.each<[string, () => string]>([
    ['bad table', () => renderNatRuleset('mc-nat', [])],
    ['table injection', () => renderNatRuleset('mc_nat; flush ruleset', [])],
    [
      'bad bridge',
      () => renderNatRuleset('mc_nat', [{ bridge: 'mc br0', cidr: '10.0.0.0/24', uplink: null }]),
    ],
    [
      'bad cidr',
      () => renderNatRuleset('mc_nat', [{ bridge: 'mcbr0', cidr: '10.0.0.1/24', uplink: null }]),
    ],
    [
      'uplink injection',
      () =>
        renderNatRuleset('mc_nat', [
          { bridge: 'mcbr0', cidr: '10.0.0.0/24', uplink: 'eth0" accept' },
        ]),
    ],
    [
      'uplink = bridge',
      () => renderNatRuleset('mc_nat', [{ bridge: 'mcbr0', cidr: '10.0.0.0/24', uplink: 'mcbr0' }]),
    ],
    [
      'duplicate bridge',
      () =>
        renderNatRuleset('mc_nat', [
          { bridge: 'mcbr0', cidr: '10.0.0.0/24', uplink: null },
          { bridge: 'mcbr0', cidr: '10.1.0.0/24', uplink: null },
        ]),
    ],
  ])('rejects %s', (_what, fn) => {
    expect(fn).toThrow(NetworkValidationError);
  });
});

describe('per-network scripts', () => {
  test('golden: update replaces only this network’s chains, in one transaction', () => {
    expect(
      renderNatNetworkUpdate('mc_nat', { bridge: 'mcbr0', cidr: '10.11.0.0/24', uplink: null }),
    ).toBe(`add table ip mc_nat
add chain ip mc_nat postrouting_mcbr0
flush chain ip mc_nat postrouting_mcbr0
delete chain ip mc_nat postrouting_mcbr0
add chain ip mc_nat forward_mcbr0
flush chain ip mc_nat forward_mcbr0
delete chain ip mc_nat forward_mcbr0
table ip mc_nat {
\tchain postrouting_mcbr0 {
\t\ttype nat hook postrouting priority srcnat; policy accept;
\t}
\tchain forward_mcbr0 {
\t\ttype filter hook forward priority filter; policy accept;
\t\tiifname "mcbr0" oifname "mcbr0" accept
\t\tiifname "mcbr0" ip saddr != 10.11.0.0/24 counter drop
\t\tiifname "mcbr0" counter drop
\t\toifname "mcbr0" counter drop
\t}
}
`);
  });

  test('golden: removal', () => {
    expect(renderNatNetworkRemoval('mc_nat', 'mcbr0')).toBe(`add table ip mc_nat
add chain ip mc_nat postrouting_mcbr0
flush chain ip mc_nat postrouting_mcbr0
delete chain ip mc_nat postrouting_mcbr0
add chain ip mc_nat forward_mcbr0
flush chain ip mc_nat forward_mcbr0
delete chain ip mc_nat forward_mcbr0
`);
  });
});
