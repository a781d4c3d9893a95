import {
  parseSecurityGroupState,
  planSecurityGroups,
  renderSecurityGroupUpdate,
  securityGroupStateFromPlan,
  sgComboChainName,
  type SecurityGroupState,
} from '@minicloud/network';
import { WEB, APP, model } from './fixtures.js';

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
