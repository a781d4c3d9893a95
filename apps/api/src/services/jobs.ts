import { recordPendingJobs } from '@minicloud/db';
import { QueueUnavailableError, type JobName, type JobPayload } from '@minicloud/queue';
import type { ServiceContext } from './context.js';

/**
 * Hand committed work to the worker: first a row in the outbox (so the work survives a failed
 * enqueue, a crash or a Redis that restarts without it), then the job. If Redis fails between the
 * request's check and here, the answer stays a success: the worker's relay enqueues the row as
 * soon as Redis is back.
 */
export async function submitJobs<N extends JobName>(
  ctx: ServiceContext,
  name: N,
  jobs: { payload: JobPayload<N>; jobId: string }[],
): Promise<void> {
  if (jobs.length === 0) return;
  await recordPendingJobs(
    ctx.db,
    jobs.map((j) => ({ jobId: j.jobId, name, payload: j.payload })),
  );
  try {
    await ctx.queue.enqueueMany(name, jobs);
  } catch (e) {
    if (!(e instanceof QueueUnavailableError)) throw e;
  }
}

export async function submitJob<N extends JobName>(
  ctx: ServiceContext,
  name: N,
  payload: JobPayload<N>,
  jobId: string,
): Promise<void> {
  await submitJobs(ctx, name, [{ payload, jobId }]);
}
