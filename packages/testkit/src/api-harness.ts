import { readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { applyMigrations, migrationsDirFor, openDatabase, type Db } from '@minicloud/db';
import { JobQueue, connectionFromUrl } from '@minicloud/queue';
import { createApiApp } from '@minicloud/app-api';
import { NetworkService } from '@minicloud/app-api/networks';
import { MinicloudClient } from '@minicloud/client';
import { removePath } from '@minicloud/host';
import { newId, parseOutboundAllowList } from '@minicloud/domain';
import { REPO_ROOT } from './paths.js';
import { createPostgresTestDatabase, testDatabaseKind } from './postgres.js';

/**
 * The Redis of the tests: MINICLOUD_REDIS_URL or the local one, with the password scripts/setup.sh
 * generated (MINICLOUD_REDIS_PASSWORD_FILE, or its default path) when the URL carries none.
 */
export const REDIS_URL = withRedisPassword(
  process.env.MINICLOUD_REDIS_URL ?? 'redis://127.0.0.1:6379',
  process.env.MINICLOUD_REDIS_PASSWORD_FILE ?? '/var/lib/minicloud-redis/password',
);

function withRedisPassword(url: string, passwordFile: string): string {
  const u = new URL(url);
  if (u.password) return url;
  let password = '';
  try {
    password = readFileSync(passwordFile, 'utf8').trim();
  } catch {
    return url; // no password set up (an older set-up): connect without one
  }
  if (password) u.password = encodeURIComponent(password);
  return u.toString();
}
export const MIGRATIONS = join(REPO_ROOT, 'prisma', 'migrations');

/** A unique, valid name prefix for one test run (2-5 chars). */
export function testPrefix(lead = 'mt'): string {
  return `${lead}${randomBytes(2)
    .toString('hex')
    .slice(0, 5 - lead.length)}`;
}

/**
 * A migrated, empty database: a SQLite file under `dir`, or with MINICLOUD_TEST_DATABASE=postgres
 * a PostgreSQL database of its own, dropped by the client's $disconnect().
 */
export async function freshDatabase(dir: string, options?: { lockWaitMs?: number }): Promise<Db> {
  if (testDatabaseKind() === 'postgres') {
    const created = await createPostgresTestDatabase();
    try {
      await applyMigrations(created.url, migrationsDirFor(created.url, REPO_ROOT));
      const db = await openDatabase(created.url, options);
      const disconnect = db.$disconnect.bind(db);
      db.$disconnect = async () => {
        await disconnect();
        await created.drop();
      };
      return db;
    } catch (error) {
      await created.drop();
      throw error;
    }
  }
  const url = `file:${join(dir, 'minicloud.db')}`;
  await applyMigrations(url, MIGRATIONS);
  return openDatabase(url, options);
}

/**
 * The same client, but every query first yields to the event loop, as it would on a database
 * reached over a socket: a transaction then stays open while other requests run, which is where
 * isolation bugs show. Transactions opened from it yield too.
 */
export function yieldingBeforeQueries(db: Db): Db {
  return db.$extends({
    query: {
      async $allOperations({ args, query }) {
        await nextTurn();
        return query(args);
      },
    },
  }) as unknown as Db;
}

/**
 * The API alone against a real SQLite file (or PostgreSQL database) and the real Redis (no
 * worker): for validation, idempotency and allocation tests. `yieldBeforeQueries` widens every
 * race window (see yieldingBeforeQueries); `lockWaitMs` bounds the wait for the database.
 */
export async function startApiOnly(
  options: {
    networkCidr?: string;
    /** MINICLOUD_IMAGE_IMPORT_ALLOW (default: none, as in production). */
    imageImportAllow?: string;
    yieldBeforeQueries?: boolean;
    lockWaitMs?: number;
    /** Another Redis than the tests' shared one (e.g. one the test stops). */
    redisUrl?: string;
  } = {},
) {
  const dir = await mkdtemp(join(tmpdir(), 'minicloud-test-api-'));
  const store = await freshDatabase(dir, { lockWaitMs: options.lockWaitMs });
  const db = options.yieldBeforeQueries ? yieldingBeforeQueries(store) : store;
  const prefix = testPrefix('ma');
  const queue = new JobQueue({
    connection: connectionFromUrl(options.redisUrl ?? REDIS_URL),
    prefix: `minicloud-test-${prefix}`,
  });
  const adminKey = `test-key-${randomBytes(8).toString('hex')}`;
  const context = {
    db,
    queue,
    settings: {
      prefix,
      defaultVpcCidr: options.networkCidr ?? '10.250.0.0/24',
      gpuDevices: [],
      maxUserDataBytes: 16 * 1024,
      terminatedRetentionMs: 3600_000,
      instancesDir: join(dir, 'instances'),
      imageImportDirs: ['/srv/images'],
      imageImportAllow: parseOutboundAllowList(options.imageImportAllow ?? '').allow,
      maxVolumeGiB: 1024,
    },
  };
  const app = createApiApp({
    ...context,
    adminKey,
    log: (m, e) => {
      if (process.env.MINICLOUD_TEST_LOG) console.error(m, e);
    },
  });
  // As the server does at start: the default VPC, its subnet and gateway.
  const defaultVpc = await new NetworkService(context).ensureDefaultVpc();
  const server: Server = await new Promise((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    db,
    queue,
    dir,
    baseUrl,
    adminKey,
    defaultVpc,
    settings: context.settings,
    client: new MinicloudClient({ baseUrl, apiKey: adminKey }),
    async close() {
      await new Promise<void>((r) => server.close(() => r()));
      await queue.obliterate().catch(() => {});
      await queue.close();
      await store.$disconnect();
      await removePath(dir);
    },
  };
}

/** An imported, available qcow2 image row (no file behind it): what launches need in API tests. */
export async function addAvailableImage(db: Db, virtualSizeBytes: number): Promise<string> {
  const id = newId('image');
  await db.image.create({
    data: {
      id,
      name: 'img',
      state: 'available',
      source: '/dev/null',
      format: 'qcow2',
      path: '/x',
      virtualSize: BigInt(virtualSizeBytes),
    },
  });
  return id;
}
