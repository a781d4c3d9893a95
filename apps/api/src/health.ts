import type { Request, Response } from 'express';
import type { Db } from '@minicloud/db';
import type { JobQueue } from '@minicloud/queue';

/** A dependency check: resolves when the dependency answers, throws (or times out) when not. */
export type HealthCheck = () => Promise<unknown>;

const CHECK_TIMEOUT_MS = 2000;

async function probe(check: HealthCheck): Promise<{ status: 'up' | 'down'; error?: string }> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      check(),
      new Promise((_resolve, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no answer within ${CHECK_TIMEOUT_MS} ms`)),
          CHECK_TIMEOUT_MS,
        );
      }),
    ]);
    return { status: 'up' };
  } catch (e) {
    return { status: 'down', error: (e as Error)?.message ?? String(e) };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * GET /healthz: every dependency checked at once, each within 2 s. 200 when all answer, 503
 * naming the ones that did not: {status, checks: {database, redis, libvirt?: {status, error?}}}.
 */
export function healthHandler(deps: {
  db: Db;
  queue: JobQueue;
  extraChecks?: Record<string, HealthCheck>;
}) {
  const checks: Record<string, HealthCheck> = {
    database: () => deps.db.$queryRawUnsafe('SELECT 1'),
    redis: () => deps.queue.assertAvailable(CHECK_TIMEOUT_MS, { fresh: true }),
    ...deps.extraChecks,
  };
  return async (_req: Request, res: Response) => {
    const names = Object.keys(checks);
    const results = await Promise.all(names.map((n) => probe(checks[n]!)));
    const report = Object.fromEntries(names.map((n, i) => [n, results[i]!]));
    const down = names.filter((n) => report[n]!.status === 'down');
    res
      .status(down.length ? 503 : 200)
      .json({ status: down.length ? 'unavailable' : 'ok', down, checks: report });
  };
}
