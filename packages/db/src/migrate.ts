import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import Database from 'better-sqlite3';

/**
 * Apply the SQL migrations under `dir` (written with `prisma migrate diff`) that this SQLite
 * database has not seen, each in its own transaction, also when several processes start at once.
 * Runs at start-up, in milliseconds, without the Prisma CLI. Returns the names applied.
 */
export async function applyMigrations(url: string, dir: string): Promise<string[]> {
  const file = url.replace(/^file:/, '');
  const names = (await readdir(dir, { withFileTypes: true }))
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort();
  const sqlite = new Database(file, { timeout: 10_000 });
  try {
    sqlite.pragma('journal_mode = WAL');
    sqlite.exec(
      'CREATE TABLE IF NOT EXISTS _minicloud_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)',
    );
    const done = new Set(
      (sqlite.prepare('SELECT name FROM _minicloud_migrations').all() as { name: string }[]).map(
        (r) => r.name,
      ),
    );
    const applied: string[] = [];
    for (const name of names) {
      if (done.has(name)) continue;
      const sql = await readFile(join(dir, name, 'migration.sql'), 'utf8');
      // IMMEDIATE takes the write lock first; then the check: another process starting at the
      // same time (`--role api` and `--role worker`) may have applied it meanwhile.
      const fresh = sqlite
        .transaction(() => {
          if (sqlite.prepare('SELECT 1 FROM _minicloud_migrations WHERE name = ?').get(name))
            return false;
          sqlite.exec(sql);
          sqlite
            .prepare('INSERT INTO _minicloud_migrations (name, applied_at) VALUES (?, ?)')
            .run(name, new Date().toISOString());
          return true;
        })
        .immediate();
      if (fresh) applied.push(name);
    }
    return applied;
  } finally {
    sqlite.close();
  }
}
