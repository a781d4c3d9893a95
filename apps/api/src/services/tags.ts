import type { Db, Tx } from '@minicloud/db';

export type TagInput = Record<string, string> | undefined;

export async function writeTags(tx: Tx, resourceId: string, tags: TagInput): Promise<void> {
  const entries = Object.entries(tags ?? {});
  if (entries.length === 0) return;
  await tx.tag.createMany({ data: entries.map(([key, value]) => ({ resourceId, key, value })) });
}

/** Tags of many resources in one query, as EC2's [{key, value}] lists. */
export async function readTags(
  db: Db,
  resourceIds: string[],
): Promise<Map<string, { key: string; value: string }[]>> {
  // Chunks stay under SQLite's bound-parameter limit.
  const rows = [];
  for (let i = 0; i < resourceIds.length; i += 500) {
    const chunk = resourceIds.slice(i, i + 500);
    rows.push(
      ...(await db.tag.findMany({ where: { resourceId: { in: chunk } }, orderBy: { key: 'asc' } })),
    );
  }
  const byId = new Map<string, { key: string; value: string }[]>();
  for (const r of rows) {
    const list = byId.get(r.resourceId) ?? [];
    list.push({ key: r.key, value: r.value });
    byId.set(r.resourceId, list);
  }
  return byId;
}
