import { join } from 'node:path';
import { PrismaClient, Prisma } from '@prisma/client';
import { SerializedSqliteAdapterFactory } from './sqlite-adapter.js';
import { applyMigrations as applySqliteMigrations } from './migrate.js';
import {
  applyPostgresMigrations,
  isPostgresUrl,
  lockRowForUpdate,
  openPostgres,
} from './postgres.js';

export { Prisma, PrismaClient };
export type Db = PrismaClient;
export type Tx = Prisma.TransactionClient;

/** How long a request may wait for the database (its write lock) before it is refused (503). */
export const DEFAULT_LOCK_WAIT_MS = 10_000;

/**
 * Open the state store. SQLite (file: URL) runs in WAL mode; writes and transactions are
 * serialized in the process and start with BEGIN IMMEDIATE, plain reads use their own connection
 * (see sqlite-adapter.ts). A wait for the database longer than `lockWaitMs` fails with an error
 * `isDatabaseBusy` recognizes. postgresql:// URLs open PostgreSQL (postgres.ts).
 */
export async function openDatabase(
  url: string,
  options: { lockWaitMs?: number } = {},
): Promise<PrismaClient> {
  if (isPostgresUrl(url)) return openPostgres(url, options);
  if (!url.startsWith('file:')) {
    throw new Error(
      `unsupported database URL ${JSON.stringify(url.split(':')[0])}: use file:PATH (SQLite) or postgresql://...`,
    );
  }
  const lockWaitMs = options.lockWaitMs ?? DEFAULT_LOCK_WAIT_MS;
  const adapter = new SerializedSqliteAdapterFactory({ url, lockWaitMs });
  // The adapter bounds the wait itself; Prisma's maxWait (2 s by default) must not cut it short.
  // A transaction open longer than `timeout` is rolled back, so it cannot hold the lock for good.
  return new PrismaClient({
    adapter,
    transactionOptions: { maxWait: lockWaitMs + 1_000, timeout: Math.max(lockWaitMs, 5_000) },
  });
}

/**
 * True when the database could not be reached in time: the write lock stayed held past the
 * bounded wait (P1008), a transaction could not start or outlived its timeout (P2028), or a
 * write conflict / deadlock (P2034). The request may succeed when retried: an API answers 503.
 */
export function isDatabaseBusy(error: unknown): boolean {
  return isKnownRequestError(error) && ['P1008', 'P2028', 'P2034'].includes(String(error.code));
}

/**
 * A Prisma known request error, by name rather than instanceof: the PostgreSQL client is
 * generated with its own copy of the runtime, so its error classes are not @prisma/client's.
 */
function isKnownRequestError(error: unknown): error is Error & { code?: unknown; meta?: unknown } {
  return error instanceof Error && error.name === 'PrismaClientKnownRequestError';
}

/** True for a unique-constraint violation (Prisma P2002), optionally on a given field. */
export function isUniqueViolation(error: unknown, field?: string): boolean {
  if (!isKnownRequestError(error) || error.code !== 'P2002') return false;
  if (!field) return true;
  const target = (error.meta as { target?: unknown } | undefined)?.target;
  const text = Array.isArray(target) ? target.join(',') : String(target ?? error.message);
  return text.includes(field) || error.message.includes(field);
}

/**
 * True when the database cannot be reached or did not answer in time (connection refused or
 * lost, timeouts, pool exhausted): the caller answers 503, not 500.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  if (error instanceof Error && error.name === 'PrismaClientInitializationError') return true;
  if (isKnownRequestError(error))
    return ['P1001', 'P1002', 'P1008', 'P1017', 'P2024'].includes(String(error.code));
  return false;
}

/** The migrations folder for a database URL: prisma/migrations (SQLite) or its PostgreSQL twin. */
export function migrationsDirFor(url: string, repoRoot: string): string {
  return isPostgresUrl(url)
    ? join(repoRoot, 'prisma', 'postgresql', 'migrations')
    : join(repoRoot, 'prisma', 'migrations');
}

/** Apply the pending migrations of `dir` (see migrationsDirFor) to the database at `url`. */
export async function applyMigrations(url: string, dir: string): Promise<string[]> {
  return isPostgresUrl(url) ? applyPostgresMigrations(url, dir) : applySqliteMigrations(url, dir);
}

/** The SQL dialect behind a client, for the few raw queries (fast paths) written per dialect. */
export function sqlDialectOf(db: PrismaClient): 'sqlite' | 'postgresql' {
  const provider = (db as unknown as { _activeProvider?: string })._activeProvider;
  return provider === 'postgresql' ? 'postgresql' : 'sqlite';
}

export { isPostgresUrl, lockRowForUpdate };

export type { DbClient } from './repositories/client.js';
export * from './repositories/tags.js';
export * from './repositories/instances.js';
export * from './repositories/volumes.js';
export * from './repositories/images.js';
export * from './repositories/network.js';
export * from './repositories/network-security-groups.js';
export * from './repositories/pending-jobs.js';
export { postgresSchemaOf } from './postgres-schema.js';
