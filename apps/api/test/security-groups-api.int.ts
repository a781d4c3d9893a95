import { newId } from '@minicloud/domain';
import { startApiOnly } from '@minicloud/testkit/api-harness';
import { expectRefused } from '@minicloud/testkit/expect-errors';

type Harness = Awaited<ReturnType<typeof startApiOnly>>;

async function counts(h: Harness) {
  const [groups, rules, members, instances, vpcs] = await Promise.all([
    h.db.securityGroup.count(),
    h.db.securityGroupRule.count(),
    h.db.instanceSecurityGroup.count(),
    h.db.instance.count(),
    h.db.vpc.count(),
  ]);
  return { groups, rules, members, instances, vpcs };
}

describe('security group API (real SQLite and Redis)', () => {
  let h: Harness;
  let imageId: string;
  let otherVpc: string;
  let otherSubnet: string;

  beforeAll(async () => {
    h = await startApiOnly({ networkCidr: '10.70.0.0/24' });
    imageId = newId('image');
    await h.db.image.create({
      data: { id: imageId, name: 'sg-image', state: 'available', source: '/dev/null', path: '/x' },
    });
    otherVpc = (await h.client.call('POST', '/v1/vpcs', { cidrBlock: '10.71.0.0/16' })).vpcId;
    otherSubnet = (
      await h.client.call('POST', '/v1/subnets', { vpcId: otherVpc, cidrBlock: '10.71.1.0/24' })
    ).subnetId;
  });
  afterAll(async () => {
    await h?.close();
  });

  const refused = (method: string, path: string, body: unknown, status: number, code: string) =>
    expectRefused(h.client, () => counts(h), { method, path, body }, status, code);

  const defaultGroupOf = async (vpcId: string) =>
    (await h.client.call('GET', `/v1/security-groups?vpcId=${vpcId}`)).securityGroups.find(
      (g: any) => g.isDefault,
    );

  it('gives every VPC a default group: inbound from its members, all outbound', async () => {
    for (const vpcId of [h.defaultVpc.vpcId, otherVpc]) {
      const g = await defaultGroupOf(vpcId);
      expect(g).toMatchObject({ groupName: 'default', vpcId });
      expect(g.ingressRules).toEqual([
        expect.objectContaining({ ipProtocol: '-1', referencedGroupId: g.groupId, cidrIpv4: null }),
      ]);
      expect(g.egressRules).toEqual([
        expect.objectContaining({ ipProtocol: '-1', cidrIpv4: '0.0.0.0/0', fromPort: null }),
      ]);
      await refused('DELETE', `/v1/security-groups/${g.groupId}`, undefined, 400, 'CannotDelete');
    }
  });

  let web: any;
  let db: any;
  it('creates groups with no inbound and all outbound, and refuses bad names', async () => {
    web = await h.client.call('POST', '/v1/security-groups', {
      groupName: 'web',
      description: 'web servers',
    });
    expect(web).toMatchObject({ vpcId: h.defaultVpc.vpcId, ingressRules: [], isDefault: false });
    expect(web.groupId).toMatch(/^sg-[0-9a-f]{17}$/);
    expect(web.egressRules).toHaveLength(1);
    expect(web.egressRules[0].securityGroupRuleId).toMatch(/^sgr-[0-9a-f]{17}$/);
    db = await h.client.call('POST', '/v1/security-groups', { groupName: 'db', description: 'db' });
    const bad = (body: unknown, status: number, code: string) =>
      refused('POST', '/v1/security-groups', body, status, code);
    await bad({ groupName: 'web', description: 'again' }, 409, 'InvalidGroup.Duplicate');
    await bad({ groupName: 'default', description: 'x' }, 400, 'InvalidGroup.Reserved');
    await bad({ groupName: 'sg-mine', description: 'x' }, 400, 'InvalidParameterValue');
    await bad({ groupName: 'tab\there', description: 'x' }, 400, 'InvalidParameterValue');
    await bad(
      { groupName: 'x', description: 'x', vpcId: newId('vpc') },
      404,
      'InvalidVpcID.NotFound',
    );
    await bad({ groupName: 'x' }, 400, 'MissingParameter');
    // The same name in another VPC is fine.
    const elsewhere = await h.client.call('POST', '/v1/security-groups', {
      groupName: 'web',
      description: 'web in the other VPC',
      vpcId: otherVpc,
    });
    expect(elsewhere.vpcId).toBe(otherVpc);
  });

  it('authorizes rules from CIDRs and groups, and refuses bad or duplicate ones', async () => {
    const ssh = await h.client.call('POST', `/v1/security-groups/${web.groupId}/ingress`, {
      ipProtocol: 'tcp',
      fromPort: 22,
      toPort: 22,
      cidrIpv4: '192.168.0.0/16',
      description: 'admins',
    });
    expect(ssh.securityGroupRules).toEqual([
      expect.objectContaining({
        ipProtocol: 'tcp',
        fromPort: 22,
        toPort: 22,
        cidrIpv4: '192.168.0.0/16',
        isEgress: false,
      }),
    ]);
    await h.client.call('POST', `/v1/security-groups/${db.groupId}/ingress`, {
      rules: [
        { ipProtocol: 'tcp', fromPort: 5432, toPort: 5432, referencedGroupId: web.groupId },
        { ipProtocol: 'icmp', fromPort: 8, toPort: -1, cidrIpv4: '10.70.0.0/24' },
        { ipProtocol: '17', fromPort: 53, toPort: 53, cidrIpv4: '0.0.0.0/0' },
      ],
    });
    const got = await h.client.call('GET', `/v1/security-groups/${db.groupId}`);
    expect(got.ingressRules.map((r: any) => r.ipProtocol).sort()).toEqual(['icmp', 'tcp', 'udp']);

    const ingress = `/v1/security-groups/${web.groupId}/ingress`;
    const bad = (rule: unknown, status: number, code: string) =>
      refused('POST', ingress, rule, status, code);
    await bad(
      { ipProtocol: 'tcp', fromPort: 22, toPort: 22, cidrIpv4: '192.168.0.0/16' },
      409,
      'InvalidPermission.Duplicate',
    );
    await bad({ ipProtocol: 'gre', cidrIpv4: '10.0.0.0/8' }, 400, 'InvalidParameterValue');
    await bad({ ipProtocol: '47', cidrIpv4: '10.0.0.0/8' }, 400, 'InvalidParameterValue');
    await bad(
      { ipProtocol: 'tcp', fromPort: 0, toPort: 70000, cidrIpv4: '10.0.0.0/8' },
      400,
      'InvalidParameterValue',
    );
    await bad(
      { ipProtocol: 'tcp', fromPort: -1, toPort: 80, cidrIpv4: '10.0.0.0/8' },
      400,
      'InvalidParameterValue',
    );
    await bad(
      { ipProtocol: 'tcp', fromPort: 90, toPort: 80, cidrIpv4: '10.0.0.0/8' },
      400,
      'InvalidParameterValue',
    );
    await bad({ ipProtocol: 'tcp', fromPort: 80, cidrIpv4: '10.0.0.0/8' }, 400, 'MissingParameter');
    await bad(
      { ipProtocol: 'tcp', fromPort: 80, toPort: 80, cidrIpv4: '10.0.0.1/8' },
      400,
      'InvalidParameterValue',
    );
    await bad(
      { ipProtocol: 'tcp', fromPort: 80, toPort: 80, cidrIpv4: '10.0.0.0/33' },
      400,
      'InvalidParameterValue',
    );
    await bad(
      { ipProtocol: 'icmp', fromPort: 256, toPort: 0, cidrIpv4: '10.0.0.0/8' },
      400,
      'InvalidParameterValue',
    );
    await bad(
      { ipProtocol: '-1', fromPort: 80, toPort: 80, cidrIpv4: '10.0.0.0/8' },
      400,
      'InvalidParameterValue',
    );
    await bad({ ipProtocol: 'tcp', fromPort: 80, toPort: 80 }, 400, 'MissingParameter');
    await bad(
      {
        ipProtocol: 'tcp',
        fromPort: 80,
        toPort: 80,
        cidrIpv4: '10.0.0.0/8',
        referencedGroupId: db.groupId,
      },
      400,
      'InvalidParameterCombination',
    );
    const foreign = await defaultGroupOf(otherVpc);
    await bad(
      { ipProtocol: 'tcp', fromPort: 80, toPort: 80, referencedGroupId: foreign.groupId },
      404,
      'InvalidGroup.NotFound',
    );
    await bad(
      { ipProtocol: 'tcp', fromPort: 80, toPort: 80, referencedGroupId: newId('securityGroup') },
      404,
      'InvalidGroup.NotFound',
    );
    // One bad rule in a list refuses the whole list.
    await bad(
      {
        rules: [
          { ipProtocol: 'tcp', fromPort: 80, toPort: 80, cidrIpv4: '0.0.0.0/0' },
          { ipProtocol: 'tcp', fromPort: 80, toPort: 80, cidrIpv4: '0.0.0.0/0' },
        ],
      },
      409,
      'InvalidPermission.Duplicate',
    );
    await refused(
      'POST',
      `/v1/security-groups/${newId('securityGroup')}/ingress`,
      { ipProtocol: '-1', cidrIpv4: '10.0.0.0/8' },
      404,
      'InvalidGroup.NotFound',
    );
  });

  it('holds at most 60 rules per direction', async () => {
    const g = await h.client.call('POST', '/v1/security-groups', {
      groupName: 'many',
      description: 'x',
    });
    const rules = Array.from({ length: 60 }, (_, i) => ({
      ipProtocol: 'tcp',
      fromPort: 1000 + i,
      toPort: 1000 + i,
      cidrIpv4: '10.0.0.0/8',
    }));
    await refused(
      'POST',
      `/v1/security-groups/${g.groupId}/ingress`,
      { rules: [...rules, { ...rules[0], fromPort: 9, toPort: 9 }] },
      400,
      'RulesPerSecurityGroupLimitExceeded',
    );
    await h.client.call('POST', `/v1/security-groups/${g.groupId}/ingress`, { rules });
    await refused(
      'POST',
      `/v1/security-groups/${g.groupId}/ingress`,
      { ipProtocol: 'udp', fromPort: 1, toPort: 1, cidrIpv4: '10.0.0.0/8' },
      400,
      'RulesPerSecurityGroupLimitExceeded',
    );
    // Egress counts separately (1 rule so far).
    await h.client.call('POST', `/v1/security-groups/${g.groupId}/egress`, {
      ipProtocol: 'udp',
      fromPort: 1,
      toPort: 1,
      cidrIpv4: '10.0.0.0/8',
    });
    expect((await h.client.call('DELETE', `/v1/security-groups/${g.groupId}`)).deleted).toBe(true);
  });

  it('revokes rules by description or by id', async () => {
    const egress = `/v1/security-groups/${web.groupId}/egress`;
    await refused(
      'POST',
      `${egress}/revoke`,
      { ipProtocol: 'tcp', fromPort: 1, toPort: 1, cidrIpv4: '0.0.0.0/0' },
      404,
      'InvalidPermission.NotFound',
    );
    const r = await h.client.call('POST', `${egress}/revoke`, {
      ipProtocol: '-1',
      cidrIpv4: '0.0.0.0/0',
    });
    expect(r.revokedSecurityGroupRules).toHaveLength(1);
    expect((await h.client.call('GET', `/v1/security-groups/${web.groupId}`)).egressRules).toEqual(
      [],
    );
    const added = await h.client.call('POST', egress, {
      ipProtocol: 'tcp',
      fromPort: 443,
      toPort: 443,
      cidrIpv4: '0.0.0.0/0',
    });
    const id = added.securityGroupRules[0].securityGroupRuleId;
    await h.client.call('DELETE', `/v1/security-groups/${web.groupId}/rules/${id}`);
    await refused(
      'DELETE',
      `/v1/security-groups/${web.groupId}/rules/${id}`,
      undefined,
      404,
      'InvalidSecurityGroupRuleId.NotFound',
    );
    await h.client.call('POST', egress, { ipProtocol: '-1', cidrIpv4: '0.0.0.0/0' });
  });

  let instanceId: string;
  it('launches with up to 5 groups of the subnet VPC, in order, or the default group', async () => {
    const launch = (extra: Record<string, unknown>) =>
      h.client.request('POST', '/v1/instances', { imageId, instanceType: 't3.nano', ...extra });
    const r = await launch({ securityGroupIds: [web.groupId, db.groupId] });
    expect(r.status).toBe(202);
    instanceId = r.body.instances[0].instanceId;
    expect(r.body.instances[0].securityGroups).toEqual([
      { groupId: web.groupId, groupName: 'web' },
      { groupId: db.groupId, groupName: 'db' },
    ]);
    const listed = await h.client.call('GET', `/v1/instances?instanceId=${instanceId}`);
    expect(listed.instances[0].securityGroups.map((g: any) => g.groupName)).toEqual(['web', 'db']);
    const plain = (await launch({})).body.instances[0];
    expect(plain.securityGroups).toEqual([
      { groupId: (await defaultGroupOf(h.defaultVpc.vpcId)).groupId, groupName: 'default' },
    ]);

    const six = [];
    for (let i = 0; i < 6; i++)
      six.push(
        (
          await h.client.call('POST', '/v1/security-groups', {
            groupName: `g${i}`,
            description: 'x',
          })
        ).groupId,
      );
    const bad = (extra: Record<string, unknown>, status: number, code: string) =>
      refused(
        'POST',
        '/v1/instances',
        { imageId, instanceType: 't3.nano', ...extra },
        status,
        code,
      );
    await bad({ securityGroupIds: six }, 400, 'SecurityGroupsPerInterfaceLimitExceeded');
    await bad({ securityGroupIds: [web.groupId, web.groupId] }, 400, 'InvalidParameterValue');
    await bad({ securityGroupIds: [newId('securityGroup')] }, 404, 'InvalidGroup.NotFound');
    await bad(
      { securityGroupIds: [web.groupId], subnetId: otherSubnet },
      400,
      'InvalidParameterCombination',
    );
    for (const g of six) await h.client.call('DELETE', `/v1/security-groups/${g}`);
  });

  it('changes the groups of an instance, and refuses more than 5 or foreign ones', async () => {
    const path = `/v1/instances/${instanceId}/security-groups`;
    const r = await h.client.call('PUT', path, { securityGroupIds: [db.groupId] });
    expect(r.securityGroups).toEqual([{ groupId: db.groupId, groupName: 'db' }]);
    expect((await h.client.call('GET', `/v1/instances/${instanceId}`)).securityGroups).toEqual(
      r.securityGroups,
    );
    await refused(
      'PUT',
      path,
      { securityGroupIds: [(await defaultGroupOf(otherVpc)).groupId] },
      400,
      'InvalidParameterCombination',
    );
    await refused('PUT', path, { securityGroupIds: [] }, 400, 'InvalidParameterValue');
    await refused(
      'PUT',
      `/v1/instances/${newId('instance')}/security-groups`,
      { securityGroupIds: [db.groupId] },
      404,
      'InvalidInstanceID.NotFound',
    );
  });

  it('refuses to delete groups that instances or other groups use', async () => {
    // db is used by the instance; web is referenced by a rule of db.
    await refused(
      'DELETE',
      `/v1/security-groups/${db.groupId}`,
      undefined,
      409,
      'DependencyViolation',
    );
    await refused(
      'DELETE',
      `/v1/security-groups/${web.groupId}`,
      undefined,
      409,
      'DependencyViolation',
    );
    await refused('DELETE', `/v1/vpcs/${otherVpc}`, undefined, 409, 'DependencyViolation');
    await h.db.instance.updateMany({ data: { state: 'terminated' } });
    await refused(
      'PUT',
      `/v1/instances/${instanceId}/security-groups`,
      { securityGroupIds: [web.groupId] },
      409,
      'IncorrectInstanceState',
    );
    expect((await h.client.call('DELETE', `/v1/security-groups/${db.groupId}`)).deleted).toBe(true);
    expect((await h.client.call('DELETE', `/v1/security-groups/${web.groupId}`)).deleted).toBe(
      true,
    );
    await refused(
      'GET',
      `/v1/security-groups/${web.groupId}`,
      undefined,
      404,
      'InvalidGroup.NotFound',
    );
  });
});
