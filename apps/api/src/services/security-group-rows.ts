import { CloudError, errors, newId } from '@minicloud/domain';
import type { Tx } from '@minicloud/db';
import {
  MAX_GROUPS_PER_INSTANCE,
  normalizeRule,
  type NormalizedRule,
} from './security-group-rules.js';

/**
 * Security-group rows written inside another change's transaction: a VPC's default group (VPCs),
 * an instance's groups (launch, modify). Shared by the services; imports none of them.
 */

export const groupNotFound = (id: string) =>
  errors.notFound('InvalidGroup.NotFound', `The security group '${id}' does not exist.`);

export const ALL_OUTBOUND = normalizeRule({ ipProtocol: '-1', cidrIpv4: '0.0.0.0/0' });

export function ruleRow(groupId: string, isEgress: boolean, r: NormalizedRule) {
  return {
    id: newId('securityGroupRule'),
    groupId,
    isEgress,
    ipProtocol: r.ipProtocol,
    fromPort: r.fromPort,
    toPort: r.toPort,
    cidrIpv4: r.cidrIpv4,
    referencedGroupId: r.referencedGroupId,
    description: r.description,
    ruleKey: r.ruleKey,
  };
}

/**
 * A VPC's `default` group (inbound from its own members, all outbound), inside the caller's
 * transaction. Idempotent.
 */
export async function ensureDefaultGroup(tx: Tx, vpcId: string): Promise<string> {
  const existing = await tx.securityGroup.findFirst({ where: { vpcId, isDefault: true } });
  if (existing) return existing.id;
  const id = newId('securityGroup');
  await tx.securityGroup.create({
    data: {
      id,
      vpcId,
      groupName: 'default',
      description: 'default VPC security group',
      isDefault: true,
    },
  });
  const self = normalizeRule({ ipProtocol: '-1', referencedGroupId: id });
  await tx.securityGroupRule.createMany({
    data: [ruleRow(id, false, self), ruleRow(id, true, ALL_OUTBOUND)],
  });
  return id;
}

/**
 * The groups an instance gets: at most 5 distinct groups of its VPC, or the VPC's default group
 * when none are given.
 */
export async function resolveInstanceGroups(
  tx: Tx,
  vpcId: string,
  groupIds: string[] | undefined,
): Promise<string[]> {
  if (!groupIds) return [await ensureDefaultGroup(tx, vpcId)];
  if (new Set(groupIds).size !== groupIds.length)
    throw errors.invalidParameter('securityGroupIds lists a group twice.');
  if (groupIds.length > MAX_GROUPS_PER_INSTANCE) {
    throw new CloudError(
      'SecurityGroupsPerInterfaceLimitExceeded',
      `At most ${MAX_GROUPS_PER_INSTANCE} security groups per instance (got ${groupIds.length}).`,
    );
  }
  const groups = await tx.securityGroup.findMany({ where: { id: { in: groupIds } } });
  for (const id of groupIds) {
    const g = groups.find((x) => x.id === id);
    if (!g) throw groupNotFound(id);
    if (g.vpcId !== vpcId) {
      throw new CloudError(
        'InvalidParameterCombination',
        `Security group ${id} belongs to ${g.vpcId}, not to the instance's network ${vpcId}.`,
      );
    }
  }
  return groupIds;
}
