import type { DbClient } from './client.js';

/** Tags as the API takes them: `{key: value}`. */
export type TagInput = Record<string, string> | undefined;
export interface TagView {
  key: string;
  value: string;
}

/** Tag a new resource (inside the caller's transaction). */
export async function writeTags(db: DbClient, resourceId: string, tags: TagInput): Promise<void> {
  const entries = Object.entries(tags ?? {});
  if (entries.length === 0) return;
  await db.tag.createMany({ data: entries.map(([key, value]) => ({ resourceId, key, value })) });
}

/** The same tags on many new resources, in one statement. */
export async function writeTagsOfMany(
  db: DbClient,
  resourceIds: string[],
  tags: TagInput,
): Promise<void> {
  const entries = Object.entries(tags ?? {});
  if (entries.length === 0 || resourceIds.length === 0) return;
  await db.tag.createMany({
    data: resourceIds.flatMap((resourceId) =>
      entries.map(([key, value]) => ({ resourceId, key, value })),
    ),
  });
}

/** Tags of many resources in one query (per 500 ids), as EC2's [{key, value}] lists by key. */
export async function readTags(
  db: DbClient,
  resourceIds: string[],
): Promise<Map<string, TagView[]>> {
  // Chunks stay under SQLite's bound-parameter limit.
  const rows = [];
  for (let i = 0; i < resourceIds.length; i += 500) {
    const chunk = resourceIds.slice(i, i + 500);
    rows.push(
      ...(await db.tag.findMany({ where: { resourceId: { in: chunk } }, orderBy: { key: 'asc' } })),
    );
  }
  const byId = new Map<string, TagView[]>();
  for (const r of rows) {
    const list = byId.get(r.resourceId) ?? [];
    list.push({ key: r.key, value: r.value });
    byId.set(r.resourceId, list);
  }
  return byId;
}

/** The tags of one resource (inside its deletion's transaction). */
export async function deleteTags(db: DbClient, resourceId: string): Promise<void> {
  await db.tag.deleteMany({ where: { resourceId } });
}

/** Present rows with their tags, read in one query for all of them. */
export async function presentTagged<R extends { id: string }, V>(
  db: DbClient,
  rows: R[],
  present: (row: R, tags: TagView[] | undefined) => V,
): Promise<V[]> {
  const tags = await readTags(
    db,
    rows.map((r) => r.id),
  );
  return rows.map((r) => present(r, tags.get(r.id)));
}
