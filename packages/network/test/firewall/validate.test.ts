import {
  planSecurityGroups,
  renderSecurityGroups,
  SecurityGroupValidationError,
  type SecurityGroupNetworkModel,
  type SecurityGroupProblem,
  type SecurityGroupRuleModel,
} from '@minicloud/network';
import { VPC_A, WEB, APP, DEF, OTHER, rid, model, problemOf } from './fixtures.js';

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
