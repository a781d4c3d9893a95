import type { Snapshot, Volume } from '@prisma/client';
import type { DbClient } from './client.js';

/** Volume and snapshot rows: the queries the API and the worker share. */

export function findVolume(db: DbClient, volumeId: string): Promise<Volume | null> {
  return db.volume.findUnique({ where: { id: volumeId } });
}

export function findSnapshot(db: DbClient, snapshotId: string): Promise<Snapshot | null> {
  return db.snapshot.findUnique({ where: { id: snapshotId } });
}

/**
 * Every volume of these instances that still exists, whatever its attachment state, by device:
 * the block device mappings the API shows, and what a terminate releases.
 */
export async function volumesOfInstances(
  db: DbClient,
  instanceIds: string[],
): Promise<Map<string, Volume[]>> {
  const rows = await db.volume.findMany({
    where: { instanceId: { in: instanceIds }, state: { not: 'deleted' } },
    orderBy: { device: 'asc' },
  });
  const byInstance = new Map<string, Volume[]>();
  for (const v of rows) {
    const list = byInstance.get(v.instanceId!) ?? [];
    list.push(v);
    byInstance.set(v.instanceId!, list);
  }
  return byInstance;
}

/** The volumes that belong in an instance's domain (attaching or attached), root first. */
export async function attachedVolumes(db: DbClient, instanceId: string): Promise<Volume[]> {
  const volumes = await db.volume.findMany({
    where: {
      instanceId,
      state: { notIn: ['deleted', 'deleting'] },
      attachState: { in: ['attaching', 'attached'] },
    },
  });
  return volumes.sort((a, b) =>
    a.isRoot === b.isRoot ? (a.target ?? '').localeCompare(b.target ?? '') : a.isRoot ? -1 : 1,
  );
}

/** A volume attached to nothing any more: available again (with why, when an attach failed). */
export async function markVolumeDetached(
  db: DbClient,
  volumeId: string,
  stateReason?: string,
): Promise<void> {
  await db.volume.update({
    where: { id: volumeId },
    data: {
      state: 'available',
      attachState: null,
      instanceId: null,
      device: null,
      target: null,
      attachTime: null,
      ...(stateReason === undefined ? {} : { stateReason }),
    },
  });
}

/** A volume whose storage is gone: deleted (the row stays for describe's history). */
export async function markVolumeDeleted(db: DbClient, volumeId: string): Promise<void> {
  await db.volume.update({
    where: { id: volumeId },
    data: {
      state: 'deleted',
      deletedAt: new Date(),
      attachState: null,
      instanceId: null,
      device: null,
      target: null,
    },
  });
}
