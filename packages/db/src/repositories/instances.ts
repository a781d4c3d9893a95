import type { ElasticIp, Instance, Prisma } from '@prisma/client';
import type { DbClient } from './client.js';

/** Instance rows: the queries the API and the worker share. */

export function findInstance(db: DbClient, instanceId: string): Promise<Instance | null> {
  return db.instance.findUnique({ where: { id: instanceId } });
}

/** An instance with its image: what a launch or a start brings up. */
export function findInstanceWithImage(db: DbClient, instanceId: string) {
  return db.instance.findUnique({ where: { id: instanceId }, include: { image: true } });
}

/** The instances of one launch, in launch-index order. */
export function instancesOfReservation(db: DbClient, reservationId: string): Promise<Instance[]> {
  return db.instance.findMany({ where: { reservationId }, orderBy: { amiLaunchIndex: 'asc' } });
}

/**
 * Move an instance from one state to the next only if nobody moved it meanwhile: the state and
 * actionSeq in the where clause make two racing changes apply once. True when it applied.
 */
export async function transitionInstance(
  db: DbClient,
  guard: { instanceId: string; from: string; actionSeq: number },
  data: Prisma.InstanceUpdateManyMutationInput,
): Promise<boolean> {
  const { count } = await db.instance.updateMany({
    where: { id: guard.instanceId, state: guard.from, actionSeq: guard.actionSeq },
    data,
  });
  return count === 1;
}

/** Instances that are not terminated, of an image, a VPC or a subnet (what blocks a deletion). */
export function countLiveInstances(
  db: DbClient,
  of: { imageId: string } | { vpcId: string } | { subnetId: string },
): Promise<number> {
  return db.instance.count({ where: { ...of, state: { not: 'terminated' } } });
}

export interface InstanceGroupView {
  groupId: string;
  groupName: string;
}

/** The security groups of many instances in one query, in the order they were given. */
export async function securityGroupsOfInstances(
  db: DbClient,
  instanceIds: string[],
): Promise<Map<string, InstanceGroupView[]>> {
  const rows = await db.instanceSecurityGroup.findMany({
    where: { instanceId: { in: instanceIds } },
    orderBy: { position: 'asc' },
    include: { group: { select: { groupName: true } } },
  });
  const byInstance = new Map<string, InstanceGroupView[]>();
  for (const r of rows) {
    const list = byInstance.get(r.instanceId) ?? [];
    list.push({ groupId: r.groupId, groupName: r.group.groupName });
    byInstance.set(r.instanceId, list);
  }
  return byInstance;
}

/** The public address (an Elastic IP or one given at launch) of many instances in one query. */
export async function publicAddressesOfInstances(
  db: DbClient,
  instanceIds: string[],
): Promise<Map<string, ElasticIp>> {
  const rows = await db.elasticIp.findMany({ where: { instanceId: { in: instanceIds } } });
  return new Map(rows.map((r) => [r.instanceId!, r]));
}
