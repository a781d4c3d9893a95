import Database from 'better-sqlite3';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { applyMigrations } from '../src/index.js';

const MIGRATIONS = fileURLToPath(new URL('../../../prisma/migrations', import.meta.url));

describe('migrations at start-up (real SQLite)', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'minicloud-test-migrate-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('apply once when several starts run them at the same time (api and worker roles)', async () => {
    const url = `file:${join(dir, 'minicloud.db')}`;
    const runs = await Promise.all(
      Array.from({ length: 3 }, () => applyMigrations(url, MIGRATIONS)),
    );
    const applied = runs.flat();
    expect(applied.length).toBeGreaterThan(0);
    expect(new Set(applied).size).toBe(applied.length);
    const db = new Database(join(dir, 'minicloud.db'));
    try {
      const names = db.prepare('SELECT name FROM _minicloud_migrations ORDER BY name').all();
      expect(names.map((n) => (n as { name: string }).name)).toEqual([...applied].sort());
    } finally {
      db.close();
    }
    expect(await applyMigrations(url, MIGRATIONS)).toEqual([]);
  });
});
