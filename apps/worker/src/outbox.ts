import {
  finishPendingJob,
  listPendingJobs,
  pendingJobExists,
  type PendingJobRecord,
} from '@minicloud/db';
import {
  UnrecoverableError,
  jobPayloads,
  type Job,
  type JobHandlers,
  type JobName,
} from '@minicloud/queue';
import type { WorkerDeps } from './context.js';

/** Job states in which Redis still holds the work: nothing to re-enqueue. */
const IN_FLIGHT = new Set(['waiting', 'active', 'delayed', 'prioritized', 'waiting-children']);

/**
 * Wrap the job handlers so a job deletes its outbox row when it has finished: after success, or
 * on its last attempt. The row goes before the job leaves 'active', so a relay that sees the job
 * finished and its row still there knows the work was really not done.
 */
export function finishingOutboxRows(deps: WorkerDeps, handlers: JobHandlers): JobHandlers {
  const wrap =
    (handler: (payload: unknown, job: Job) => Promise<unknown>) =>
    async (payload: unknown, job: Job) => {
      try {
        const result = await handler(payload, job);
        if (job.id) await finishPendingJob(deps.db, job.id);
        return result;
      } catch (e) {
        const attempts = job.opts.attempts ?? 1;
        const final = e instanceof UnrecoverableError || job.attemptsMade + 1 >= attempts;
        if (final && job.id) {
          await finishPendingJob(deps.db, job.id).catch((err: Error) =>
            deps.log(`outbox: could not finish ${job.id}: ${err.message}`),
          );
        }
        throw e;
      }
    };
  return Object.fromEntries(
    Object.entries(handlers).map(([name, handler]) => [
      name,
      Object.hasOwn(jobPayloads, name)
        ? wrap(handler as (payload: unknown, job: Job) => Promise<unknown>)
        : handler,
    ]),
  ) as JobHandlers;
}

/**
 * The outbox relay: every committed job whose row is older than `minAgeMs` and that Redis does not
 * hold (lost in a Redis restart, or never enqueued because Redis was down) is enqueued again
 * under its own job id, so a duplicate is a no-op. Returns the job ids enqueued.
 */
export async function requeuePendingJobs(
  deps: WorkerDeps,
  options: { minAgeMs: number; limit?: number },
): Promise<string[]> {
  const rows = await listPendingJobs(deps.db, {
    olderThan: new Date(Date.now() - options.minAgeMs),
    limit: options.limit ?? 1000,
  });
  const requeued: string[] = [];
  for (const row of rows) {
    const name = validJobName(row);
    const parsed = name ? jobPayloads[name].safeParse(row.payload) : undefined;
    if (!name || !parsed?.success) {
      deps.log(`outbox: dropping ${row.jobId}: unknown job ${row.name} or bad payload`);
      await finishPendingJob(deps.db, row.jobId);
      continue;
    }
    const state = await deps.queue.jobState(name, row.jobId);
    if (IN_FLIGHT.has(state)) continue;
    // Finished since the rows were read (the row goes before the job completes).
    if (!(await pendingJobExists(deps.db, row.jobId))) continue;
    const enqueue = deps.queue.ensureJob.bind(deps.queue) as (
      n: JobName,
      p: unknown,
      id: string,
    ) => Promise<boolean>;
    if (await enqueue(name, parsed.data, row.jobId)) requeued.push(row.jobId);
  }
  return requeued;
}

function validJobName(row: PendingJobRecord): JobName | null {
  return Object.hasOwn(jobPayloads, row.name) ? (row.name as JobName) : null;
}
