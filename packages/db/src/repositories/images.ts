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
