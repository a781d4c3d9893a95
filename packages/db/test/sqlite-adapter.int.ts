import { run } from '@minicloud/host';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { applyMigrations, isDatabaseBusy, openDatabase, type Db } from '../src/index.js';
import { SerializedSqliteAdapterFactory } from '../src/sqlite-adapter.js';

const MIGRATIONS = fileURLToPath(new URL('../../../prisma/migrations', import.meta.url));
const COUNTER = fileURLToPath(new URL('./fixtures/increment-counter.ts', import.meta.url));

const key = (name: string) => ({
  data: { id: `key-${name}`, name, keyType: 'ed25519', publicKey: 'x', fingerprint: 'f' },
});

describe('SQLite state store under concurrency (real SQLite files)', () => {
  let dir: string;
  let url: string;
  const opened: Db[] = [];
  const open = async (options?: { lockWaitMs?: number }) => {
    const db = await openDatabase(url, options);
    opened.push(db);
    return db;
  };

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'minicloud-test-db-'));
    url = `file:${join(dir, 'minicloud.db')}`;
    await applyMigrations(url, MIGRATIONS);
  });
  afterEach(async () => {
    for (const db of opened.splice(0)) await db.$disconnect();
    await rm(dir, { recursive: true, force: true });
  });

  it('a failing transaction takes no other write with it, and hides its rows', async () => {
    const db = await open();
    let seenInside = 0;
    const results = await Promise.allSettled([
      db.$transaction(async (tx) => {
        await tx.keyPair.create(key('inside'));
        for (let i = 0; i < 5; i++) await tx.keyPair.findMany();
        throw new Error('fails on purpose');
      }),
      ...Array.from({ length: 8 }, async (_, i) => {
        const all = await db.keyPair.findMany();
        seenInside += all.filter((k) => k.name === 'inside').length;
        await db.keyPair.create(key(`outside-${i}`));
      }),
    ]);
    expect(results.map((r) => r.status)).toEqual(['rejected', ...Array(8).fill('fulfilled')]);
    const names = (await db.keyPair.findMany()).map((k) => k.name).sort();
    expect(names).toEqual(Array.from({ length: 8 }, (_, i) => `outside-${i}`).sort());
    expect(seenInside).toBe(0);
  });

  it('plain reads see committed rows only and do not wait for an open transaction', async () => {
    const db = await open();
    let committed = false;
    const tx = db.$transaction(async (t) => {
      await t.keyPair.create(key('pending'));
      await sleep(300);
    });
    tx.then(() => (committed = true)).catch(() => {});
    await sleep(50);
    expect(await db.keyPair.count()).toBe(0);
    expect(committed).toBe(false);
    await tx;
    expect(await db.keyPair.count()).toBe(1);
  });

  it('a write that waits too long is refused as busy, then succeeds once the lock is free', async () => {
    const db = await open({ lockWaitMs: 200 });
    let started!: () => void;
    let finish!: () => void;
    const inside = new Promise<void>((r) => (started = r));
    const gate = new Promise<void>((r) => (finish = r));
    const holder = db.$transaction(
      async (t) => {
        await t.keyPair.create(key('holder'));
        started();
        await gate;
      },
      { timeout: 60_000 },
    );
    await inside;
    const plain = await db.keyPair.create(key('plain')).catch((e: unknown) => e);
    const transaction = await db.$transaction((t) => t.keyPair.count()).catch((e: unknown) => e);
    finish();
    await holder;
    expect(isDatabaseBusy(plain)).toBe(true);
    expect(isDatabaseBusy(transaction)).toBe(true);
    await db.keyPair.create(key('plain'));
    expect((await db.keyPair.findMany()).map((k) => k.name).sort()).toEqual(['holder', 'plain']);
  });

  it('a transaction past its timeout is rolled back and lets go of the lock', async () => {
    const db = await open({ lockWaitMs: 5_000 });
    const slow = await db
      .$transaction(
        async (t) => {
          await t.keyPair.create(key('slow'));
          await sleep(600);
          await t.keyPair.create(key('late'));
        },
        { timeout: 200 },
      )
      .catch((e: unknown) => e);
    expect(slow).toBeInstanceOf(Error);
    await db.keyPair.create(key('after'));
    expect((await db.keyPair.findMany()).map((k) => k.name)).toEqual(['after']);
  });

  it('a closed transaction runs no further statement on the shared writer', async () => {
    const adapter = await new SerializedSqliteAdapterFactory({ url, lockWaitMs: 1_000 }).connect();
    try {
      const tx = await adapter.startTransaction();
      await tx.executeRaw({ sql: 'COMMIT', args: [], argTypes: [] });
      await tx.commit();
      await expect(tx.queryRaw({ sql: 'SELECT 1', args: [], argTypes: [] })).rejects.toThrow();
      // The lock is free again.
      const next = await adapter.startTransaction();
      await next.executeRaw({ sql: 'ROLLBACK', args: [], argTypes: [] });
      await next.rollback();
    } finally {
      await adapter.dispose();
    }
  });

  it('read-then-write transactions from several processes on one file all commit', async () => {
    const db = await open();
    await db.tag.create({ data: { resourceId: 'counter', key: 'n', value: '0' } });
    const times = 50;
    // Each child is a separate process with its own connections, as `--role api` and `--role
    // worker` are.
    const child = async () =>
      JSON.parse(
        (
          await run(process.execPath, ['--import', 'tsx', COUNTER, url, String(times)], {
            timeoutMs: 300_000,
          })
        ).stdout,
      ) as { done: number; failures: string[] };
    // This process writes too, through its own connection.
    const here = (async () => {
      for (let i = 0; i < times; i++) {
        await db.$transaction(async (tx) => {
          const row = await tx.tag.findUniqueOrThrow({
            where: { resourceId_key: { resourceId: 'counter', key: 'n' } },
          });
          await tx.tag.update({
            where: { resourceId_key: { resourceId: 'counter', key: 'n' } },
            data: { value: String(Number(row.value) + 1) },
          });
        });
      }
    })();
    const children = await Promise.all([child(), child()]);
    await here;
    expect(children.flatMap((c) => c.failures)).toEqual([]);
    expect(children.map((c) => c.done)).toEqual([times, times]);
    const counter = await db.tag.findUniqueOrThrow({
      where: { resourceId_key: { resourceId: 'counter', key: 'n' } },
    });
    expect(Number(counter.value)).toBe(3 * times);
  });
});
