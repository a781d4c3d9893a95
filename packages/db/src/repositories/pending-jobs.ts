import type { DbClient } from './client.js';

/** One row of the outbox: a job that was committed and has not finished yet. */
export interface PendingJobRecord {
  jobId: string;
  name: string;
  payload: unknown;
}

/** Record committed work before it is enqueued (a second record of the same job id is a no-op). */
export async function recordPendingJobs(db: DbClient, jobs: PendingJobRecord[]): Promise<void> {
  for (const job of jobs) {
    const payload = JSON.stringify(job.payload);
    await db.pendingJob.upsert({
      where: { jobId: job.jobId },
      create: { jobId: job.jobId, name: job.name, payload },
      update: {},
    });
  }
}

/** The job has finished (done, or failed for good): nothing is left to re-enqueue. */
export async function finishPendingJob(db: DbClient, jobId: string): Promise<void> {
  await db.pendingJob.deleteMany({ where: { jobId } });
}

/** Outbox rows older than `olderThan`, oldest first. */
export async function listPendingJobs(
  db: DbClient,
  options: { olderThan: Date; limit: number },
): Promise<(PendingJobRecord & { createdAt: Date })[]> {
  const rows = await db.pendingJob.findMany({
    where: { createdAt: { lt: options.olderThan } },
    orderBy: { createdAt: 'asc' },
    take: options.limit,
  });
  return rows.map((r) => ({ ...r, payload: JSON.parse(r.payload) as unknown }));
}

export async function pendingJobExists(db: DbClient, jobId: string): Promise<boolean> {
  return (await db.pendingJob.count({ where: { jobId } })) > 0;
}
