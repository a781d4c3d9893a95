import { PrismaClient, Prisma } from '@prisma/client';
import { PrismaBetterSQLite3 } from '@prisma/adapter-better-sqlite3';

export { Prisma, PrismaClient };
export type Db = PrismaClient;
export type Tx = Prisma.TransactionClient;

/**
 * Open the state store. SQLite (file: URL) runs in WAL mode with a busy timeout so concurrent
 * writers wait instead of failing.
 */
export async function openDatabase(url: string): Promise<PrismaClient> {
  if (!url.startsWith('file:')) {
    throw new Error(
      `unsupported database URL ${JSON.stringify(url.split(':')[0])}: this build supports SQLite (file:) URLs`,
    );
  }
  const adapter = new PrismaBetterSQLite3({ url, timeout: 10_000 });
  const prisma = new PrismaClient({ adapter });
  await prisma.$queryRawUnsafe('PRAGMA journal_mode = WAL');
  await prisma.$queryRawUnsafe('PRAGMA busy_timeout = 10000');
  await prisma.$queryRawUnsafe('PRAGMA synchronous = NORMAL');
  return prisma;
}

/** True for a unique-constraint violation (Prisma P2002), optionally on a given field. */
export function isUniqueViolation(error: unknown, field?: string): boolean {
  if (!(error instanceof Prisma.PrismaClientKnownRequestError) || error.code !== 'P2002') {
    return false;
  }
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
  if (error instanceof Prisma.PrismaClientInitializationError) return true;
  if (error instanceof Prisma.PrismaClientKnownRequestError)
    return ['P1001', 'P1002', 'P1008', 'P1017', 'P2024'].includes(error.code);
  return false;
}

export { applyMigrations } from './migrate.js';

export type { DbClient } from './repositories/client.js';
export * from './repositories/tags.js';
export * from './repositories/instances.js';
export * from './repositories/volumes.js';
export * from './repositories/images.js';
export * from './repositories/network.js';
export * from './repositories/network-security-groups.js';
export * from './repositories/pending-jobs.js';
