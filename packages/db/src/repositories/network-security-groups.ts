import type { SecurityGroup, SecurityGroupRule, Vpc } from '@prisma/client';
import type { DbClient } from './client.js';

/**
 * The security-group model as rows: what the host's firewall tables are rendered from (the
 * worker turns the rows into the firewall model). Plain functions over the Prisma client.
 */

/** An instance as a firewall port: its address, MAC and groups (in order). */
export interface SecurityGroupPortRow {
  id: string;
  vpcId: string;
  macAddress: string;
  privateIp: string | null;
  securityGroups: { groupId: string; position: number }[];
}

export interface SecurityGroupRows {
  vpcs: (Vpc & { subnets: { cidrBlock: string }[] })[];
  groups: SecurityGroup[];
  /** Oldest first. */
  rules: SecurityGroupRule[];
  /** Instances that are not terminated. */
  instances: SecurityGroupPortRow[];
}

const portSelect = {
  id: true,
  vpcId: true,
  macAddress: true,
  privateIp: true,
  securityGroups: { select: { groupId: true, position: true } },
} as const;

/** Everything the firewall tables of this installation are made of. */
export async function loadSecurityGroupRows(db: DbClient): Promise<SecurityGroupRows> {
  const [vpcs, groups, rules, instances] = await Promise.all([
    db.vpc.findMany({ include: { subnets: { select: { cidrBlock: true } } } }),
    db.securityGroup.findMany(),
    db.securityGroupRule.findMany({ orderBy: { createdAt: 'asc' } }),
    db.instance.findMany({ where: { state: { not: 'terminated' } }, select: portSelect }),
  ]);
  return { vpcs, groups, rules, instances };
}

/** These instances as firewall ports (whatever their state). */
export function findSecurityGroupPorts(
  db: DbClient,
  instanceIds: readonly string[],
): Promise<SecurityGroupPortRow[]> {
  return db.instance.findMany({ where: { id: { in: [...instanceIds] } }, select: portSelect });
}
