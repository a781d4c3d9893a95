import { createRequire } from 'node:module';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { PrismaClient } from '@prisma/client';
import type { DbClient } from './repositories/client.js';
import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';

/** postgresql:// and postgres:// URLs select PostgreSQL; file: URLs SQLite. */
export function isPostgresUrl(url: string): boolean {
  return /^postgres(ql)?:\/\//.test(url);
}

/** Where the generated PostgreSQL client lives (prisma/postgresql/schema.prisma `output`). */
const POSTGRES_CLIENT = '.prisma/client-postgresql';

/**
 * Open a PostgreSQL state store through @prisma/adapter-pg. The client is generated from
 * prisma/postgresql/schema.prisma, itself generated from prisma/schema.prisma: the same models,
 * so it is typed as the (SQLite) PrismaClient the repositories use.
 */
export async function openPostgres(
  url: string,
  options: { lockWaitMs?: number } = {},
): Promise<PrismaClient> {
  const lockWaitMs = options.lockWaitMs ?? 10_000;
  let generated: {
    PrismaClient: new (options: {
      adapter: PrismaPg;
      transactionOptions: { maxWait: number; timeout: number };
    }) => PrismaClient;
  };
  try {
    generated = createRequire(import.meta.url)(POSTGRES_CLIENT) as typeof generated;
  } catch (error) {
    throw new Error(
      `the PostgreSQL Prisma client is not generated (${(error as Error).message}): run ` +
        '`npx prisma generate --config prisma/postgresql/prisma.config.ts` (scripts/setup.sh does)',
    );
  }
  // Transactions run side by side on a pool; a burst waits for a free connection (and a new
  // connection for the server) up to lockWaitMs, then fails as isDatabaseBusy (P2028) or P1001.
  const prisma = new generated.PrismaClient({
    adapter: new PrismaPg({ connectionString: url, max: 20, connectionTimeoutMillis: lockWaitMs }),
    transactionOptions: { maxWait: lockWaitMs, timeout: Math.max(2 * lockWaitMs, 20_000) },
  });
  await prisma.$connect();
  return prisma;
}

/**
 * Inside a transaction: lock one row until it ends, so read-then-write work keyed on it (address
 * allocation in a subnet) runs one at a time on PostgreSQL. SQLite already runs one writer at a
 * time, so there it does nothing.
 */
export async function lockRowForUpdate(
  tx: DbClient,
  table: 'Subnet' | 'Vpc' | 'SecurityGroup' | 'PublicIpv4Pool',
  id: string,
): Promise<void> {
  if ((tx as { _activeProvider?: string })._activeProvider !== 'postgresql') return;
  await tx.$queryRawUnsafe(`SELECT 1 FROM "${table}" WHERE id = $1 FOR UPDATE`, id);
}

/** Any fixed number: every minicloud process migrating one database takes the same lock. */
const MIGRATION_LOCK = 0x6d696e69;

/**
 * Apply the SQL migrations under `dir` (prisma/postgresql/migrations) that this PostgreSQL
 * database has not seen, each in its own transaction (PostgreSQL's DDL is transactional), under
 * an advisory lock so an API and a worker starting together do not both apply one.
 */
export async function applyPostgresMigrations(url: string, dir: string): Promise<string[]> {
  const names = (await readdir(dir, { withFileTypes: true }))
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort();
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  await client.connect();
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    await client.query(
      'CREATE TABLE IF NOT EXISTS _minicloud_migrations (name TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL)',
    );
    const done = new Set(
      (await client.query<{ name: string }>('SELECT name FROM _minicloud_migrations')).rows.map(
        (r) => r.name,
      ),
    );
    const applied: string[] = [];
    for (const name of names) {
      if (done.has(name)) continue;
      const sql = await readFile(join(dir, name, 'migration.sql'), 'utf8');
      await client.query('BEGIN');
      try {
        await client.query(sql);
        await client.query(
          'INSERT INTO _minicloud_migrations (name, applied_at) VALUES ($1, now())',
          [name],
        );
        await client.query('COMMIT');
      } catch (error) {
        await client.query('ROLLBACK');
        throw new Error(`migration ${name} failed: ${(error as Error).message}`, { cause: error });
      }
      applied.push(name);
    }
    return applied;
  } finally {
    await client.end();
  }
}
