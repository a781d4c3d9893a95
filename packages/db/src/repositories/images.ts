import type { Image } from '@prisma/client';
import type { DbClient } from './client.js';

/** Image rows: the queries the API and the worker share. */

export function findImage(db: DbClient, imageId: string): Promise<Image | null> {
  return db.image.findUnique({ where: { id: imageId } });
}

/** Images not yet deregistered (one of them with `imageId`), oldest first. */
export function listImages(db: DbClient, imageId?: string): Promise<Image[]> {
  return db.image.findMany({
    where: { state: { not: 'deregistered' }, ...(imageId ? { id: imageId } : {}) },
    orderBy: { createdAt: 'asc' },
  });
}

/**
 * Inside a launch's reserving transaction: true when the image is still available. It is a write
 * (an update that changes nothing) on purpose: as the transaction's first statement it takes
 * SQLite's write lock, so a deregistration either committed before (and the launch is refused)
 * or waits until the launch's instances exist (and is refused itself).
 */
export async function holdImageForLaunch(db: DbClient, imageId: string): Promise<boolean> {
  const { count } = await db.image.updateMany({
    where: { id: imageId, state: 'available' },
    data: { state: 'available' },
  });
  return count === 1;
}

/**
 * Mark an image deregistering unless an instance that is not terminated, or a root volume kept
 * after one, still uses it; in one transaction (`db` must be a transaction client) whose first
 * statement is the write, so no launch reserves the image between the check and the change.
 * 'ok', 'missing' (no such image, or deregistered), 'importing', or the number of users.
 */
export async function markImageDeregistering(
  db: DbClient,
  imageId: string,
): Promise<'ok' | 'missing' | 'importing' | number> {
  const { count } = await db.image.updateMany({
    where: { id: imageId, state: { notIn: ['deregistered', 'pending'] } },
    data: { state: 'deregistering' },
  });
  if (count === 0) {
    const image = await db.image.findUnique({ where: { id: imageId }, select: { state: true } });
    return !image || image.state === 'deregistered' ? 'missing' : 'importing';
  }
  const users =
    (await db.instance.count({ where: { imageId, state: { not: 'terminated' } } })) +
    // Root volumes kept after terminate are overlays on the image too.
    (await db.volume.count({ where: { imageId, state: { not: 'deleted' }, instanceId: null } }));
  return users === 0 ? 'ok' : users;
}
