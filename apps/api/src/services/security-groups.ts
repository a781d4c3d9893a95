import { CloudError, errors, newId } from '@minicloud/domain';
import {
  deleteTags,
  findInstance,
  isUniqueViolation,
  readTags,
  securityGroupsOfInstances,
  writeTags,
  type TagInput,
} from '@minicloud/db';
import type { SecurityGroupRuleInputType } from '@minicloud/contracts';
import type { SecurityGroup, SecurityGroupRule } from '@prisma/client';
import type { ServiceContext } from './context.js';
import { requestNetworkApply } from './network-apply.js';
import {
  MAX_RULES_PER_DIRECTION,
  checkGroupName,
  normalizeRule,
  type NormalizedRule,
} from './security-group-rules.js';
import {
  ALL_OUTBOUND,
  groupNotFound,
  resolveInstanceGroups,
  ruleRow,
} from './security-group-rows.js';

export function presentRule(r: SecurityGroupRule) {
  return {
    securityGroupRuleId: r.id,
    groupId: r.groupId,
    isEgress: r.isEgress,
    ipProtocol: r.ipProtocol,
    fromPort: r.fromPort,
    toPort: r.toPort,
    cidrIpv4: r.cidrIpv4,
    referencedGroupId: r.referencedGroupId,
    description: r.description,
  };
}

export function presentGroup(
  g: SecurityGroup,
  rules: SecurityGroupRule[],
  tags: { key: string; value: string }[] = [],
) {
  const mine = rules.filter((r) => r.groupId === g.id);
  return {
    groupId: g.id,
    groupName: g.groupName,
    description: g.description,
    vpcId: g.vpcId,
    isDefault: g.isDefault,
    ingressRules: mine.filter((r) => !r.isEgress).map(presentRule),
    egressRules: mine.filter((r) => r.isEgress).map(presentRule),
    tags,
  };
}

/** Rule and membership changes touch only the security-group tables. */
const SG_SCOPE = { scope: 'security-groups' as const };

/** Security groups: the database decides; every change ends in one 'network.apply'. */
export class SecurityGroupService {
  constructor(private readonly ctx: ServiceContext) {}

  private async defaultVpcId(): Promise<string> {
    const vpc = await this.ctx.db.vpc.findFirst({ where: { isDefault: true } });
    if (!vpc) throw new CloudError('VPCIdNotSpecified', 'There is no default VPC; give vpcId.');
    return vpc.id;
  }

  async create(input: { groupName: string; description: string; vpcId?: string; tags?: TagInput }) {
    const groupName = checkGroupName(input.groupName);
    const vpcId = input.vpcId ?? (await this.defaultVpcId());
    const id = newId('securityGroup');
    try {
      await this.ctx.db.$transaction(async (tx) => {
        if (!(await tx.vpc.findUnique({ where: { id: vpcId } })))
          throw errors.notFound('InvalidVpcID.NotFound', `The vpc ID '${vpcId}' does not exist.`);
        await tx.securityGroup.create({
          data: { id, vpcId, groupName, description: input.description },
        });
        // As EC2: a new group allows all outbound traffic and no inbound traffic.
        await tx.securityGroupRule.create({ data: ruleRow(id, true, ALL_OUTBOUND) });
        await writeTags(tx, id, input.tags);
      });
    } catch (e) {
      if (isUniqueViolation(e, 'groupName')) {
        throw new CloudError(
          'InvalidGroup.Duplicate',
          `The security group '${groupName}' already exists in ${vpcId}.`,
          409,
        );
      }
      throw e;
    }
    await requestNetworkApply(this.ctx, `create ${id}`, SG_SCOPE);
    return this.get(id);
  }

  async describe(filter: { vpcId?: string; groupIds?: string[] } = {}) {
    const { db } = this.ctx;
    const groups = await db.securityGroup.findMany({
      where: {
        ...(filter.vpcId ? { vpcId: filter.vpcId } : {}),
        ...(filter.groupIds ? { id: { in: filter.groupIds } } : {}),
      },
      orderBy: { createdAt: 'asc' },
    });
    const ids = groups.map((g) => g.id);
    const [rules, tags] = await Promise.all([
      db.securityGroupRule.findMany({
        where: { groupId: { in: ids } },
        orderBy: { createdAt: 'asc' },
      }),
      readTags(db, ids),
    ]);
    return groups.map((g) => presentGroup(g, rules, tags.get(g.id)));
  }

  async get(groupId: string) {
    const [group] = await this.describe({ groupIds: [groupId] });
    if (!group) throw groupNotFound(groupId);
    return group;
  }

  async delete(groupId: string) {
    await this.ctx.db.$transaction(async (tx) => {
      const group = await tx.securityGroup.findUnique({ where: { id: groupId } });
      if (!group) throw groupNotFound(groupId);
      if (group.isDefault) {
        throw new CloudError(
          'CannotDelete',
          `The default security group of ${group.vpcId} cannot be deleted.`,
        );
      }
      const users = await tx.instanceSecurityGroup.count({
        where: { groupId, instance: { state: { not: 'terminated' } } },
      });
      if (users) {
        throw errors.dependency(
          `resource ${groupId} has a dependent object: ${users} instance(s) use it.`,
        );
      }
      const referencing = await tx.securityGroupRule.findFirst({
        where: { referencedGroupId: groupId, groupId: { not: groupId } },
      });
      if (referencing) {
        throw errors.dependency(
          `resource ${groupId} has a dependent object: a rule of ${referencing.groupId} references it.`,
        );
      }
      await tx.securityGroupRule.deleteMany({ where: { groupId } });
      await tx.instanceSecurityGroup.deleteMany({ where: { groupId } });
      await tx.securityGroup.delete({ where: { id: groupId } });
      await deleteTags(tx, groupId);
    });
    await requestNetworkApply(this.ctx, `delete ${groupId}`, SG_SCOPE);
    return { groupId, deleted: true };
  }

  async authorize(groupId: string, isEgress: boolean, inputs: SecurityGroupRuleInputType[]) {
    const rules = inputs.map(normalizeRule);
    const keys = new Set<string>();
    for (const r of rules) {
      if (keys.has(r.ruleKey)) throw duplicate(r);
      keys.add(r.ruleKey);
    }
    let created: SecurityGroupRule[];
    try {
      created = await this.ctx.db.$transaction(async (tx) => {
        const group = await tx.securityGroup.findUnique({ where: { id: groupId } });
        if (!group) throw groupNotFound(groupId);
        const peers = [...new Set(rules.flatMap((r) => r.referencedGroupId ?? []))];
        const found = await tx.securityGroup.findMany({ where: { id: { in: peers } } });
        for (const peer of peers) {
          const g = found.find((x) => x.id === peer);
          if (!g || g.vpcId !== group.vpcId) {
            throw errors.notFound(
              'InvalidGroup.NotFound',
              `The security group '${peer}' does not exist in ${group.vpcId}.`,
            );
          }
        }
        const existing = await tx.securityGroupRule.findMany({ where: { groupId, isEgress } });
        const clash = rules.find((r) => existing.some((e) => e.ruleKey === r.ruleKey));
        if (clash) throw duplicate(clash);
        if (existing.length + rules.length > MAX_RULES_PER_DIRECTION) {
          throw new CloudError(
            'RulesPerSecurityGroupLimitExceeded',
            `A security group has at most ${MAX_RULES_PER_DIRECTION} ${isEgress ? 'outbound' : 'inbound'} rules (${existing.length} exist, ${rules.length} more asked).`,
          );
        }
        const rows = rules.map((r) => ruleRow(groupId, isEgress, r));
        await tx.securityGroupRule.createMany({ data: rows });
        return tx.securityGroupRule.findMany({ where: { id: { in: rows.map((r) => r.id) } } });
      });
    } catch (e) {
      // A racing request added the same rule first.
      if (isUniqueViolation(e, 'ruleKey')) throw duplicate(rules[0]!);
      throw e;
    }
    await requestNetworkApply(this.ctx, `authorize ${groupId}`, SG_SCOPE);
    return { groupId, securityGroupRules: created.map(presentRule) };
  }

  async revoke(
    groupId: string,
    isEgress: boolean | null,
    what: { rules: SecurityGroupRuleInputType[] } | { securityGroupRuleIds: string[] },
  ) {
    const removed = await this.ctx.db.$transaction(async (tx) => {
      const group = await tx.securityGroup.findUnique({ where: { id: groupId } });
      if (!group) throw groupNotFound(groupId);
      const existing = await tx.securityGroupRule.findMany({
        where: { groupId, ...(isEgress === null ? {} : { isEgress }) },
      });
      const targets =
        'rules' in what
          ? what.rules.map((input) => {
              const key = normalizeRule(input).ruleKey;
              const hit = existing.find((e) => e.ruleKey === key);
              if (!hit) {
                throw errors.notFound(
                  'InvalidPermission.NotFound',
                  `The specified rule does not exist in this security group (${key}).`,
                );
              }
              return hit;
            })
          : what.securityGroupRuleIds.map((id) => {
              const hit = existing.find((e) => e.id === id);
              if (!hit) {
                throw errors.notFound(
                  'InvalidSecurityGroupRuleId.NotFound',
                  `The security group rule '${id}' does not exist in ${groupId}.`,
                );
              }
              return hit;
            });
      await tx.securityGroupRule.deleteMany({ where: { id: { in: targets.map((t) => t.id) } } });
      return targets;
    });
    await requestNetworkApply(this.ctx, `revoke ${groupId}`, SG_SCOPE);
    return { groupId, revokedSecurityGroupRules: removed.map(presentRule) };
  }

  /** Replace a (not terminated) instance's groups; applied on the host at once. */
  async setInstanceGroups(instanceId: string, groupIds: string[]) {
    await this.ctx.db.$transaction(async (tx) => {
      const instance = await findInstance(tx, instanceId);
      if (!instance) {
        throw errors.notFound(
          'InvalidInstanceID.NotFound',
          `The instance ID '${instanceId}' does not exist.`,
        );
      }
      if (instance.state === 'terminated' || instance.state === 'shutting-down') {
        throw errors.incorrectState(`The instance '${instanceId}' is ${instance.state}.`);
      }
      const ids = await resolveInstanceGroups(tx, instance.vpcId, groupIds);
      await tx.instanceSecurityGroup.deleteMany({ where: { instanceId } });
      await tx.instanceSecurityGroup.createMany({
        data: ids.map((groupId, position) => ({ instanceId, groupId, position })),
      });
    });
    await requestNetworkApply(this.ctx, `groups of ${instanceId}`, SG_SCOPE);
    const groups = await securityGroupsOfInstances(this.ctx.db, [instanceId]);
    return { instanceId, securityGroups: groups.get(instanceId) ?? [] };
  }
}

function duplicate(r: NormalizedRule) {
  const ports = r.fromPort === null ? 'all ports' : `${r.fromPort}-${r.toPort}`;
  return new CloudError(
    'InvalidPermission.Duplicate',
    `The specified rule (${r.ipProtocol} ${ports} ${r.cidrIpv4 ?? r.referencedGroupId}) already exists.`,
    409,
  );
}
