import {
  planSecurityGroups,
  planSecurityGroupUpdate,
  renderSecurityGroupUpdate,
  securityGroupStateFromPlan,
  type SecurityGroupChanges,
  type SecurityGroupNetworkModel,
  type SecurityGroupProblem,
  type SecurityGroupState,
} from '@minicloud/network';
import {
  VPC_A,
  VPC_B,
  WEB,
  APP,
  DEF,
  OTHER,
  BR_A,
  BR_B,
  rid,
  model,
  problemOf,
} from './fixtures.js';

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
