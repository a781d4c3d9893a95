import type { Job, JobHandlers } from '@minicloud/queue';
import { startApiOnly } from '@minicloud/testkit/api-harness';
import { startOwnRedis } from '@minicloud/testkit/redis-server';
import type { WorkerDeps } from '../src/context.js';
import { finishingOutboxRows, requeuePendingJobs } from '../src/outbox.js';

type Harness = Awaited<ReturnType<typeof startApiOnly>>;
type OwnRedis = Awaited<ReturnType<typeof startOwnRedis>>;

/**
 * Work the reconciler never rescanned (a volume resize, a network apply: no state in the database
 * says it is pending) is queued again from the outbox after Redis restarted without it.
 */
describe('the outbox against real SQLite and a Redis of its own', () => {
  let redis: OwnRedis;
  let h: Harness;
  let deps: WorkerDeps;
  const logs: string[] = [];
  beforeAll(async () => {
    redis = await startOwnRedis();
    h = await startApiOnly({ networkCidr: '10.247.0.0/24', redisUrl: redis.url });
    // The relay needs the database, the queue and a log; nothing on the host.
    deps = { db: h.db, queue: h.queue, log: (m: string) => logs.push(m) } as unknown as WorkerDeps;
  });
  afterAll(async () => {
    await h?.close();
    await redis?.destroy();
  });

  it('re-enqueues a resize and a network apply that a Redis restart lost, once', async () => {
    const volume = await h.client.call('POST', '/v1/volumes', { size: 1 });
    // As if the worker had created it (no worker runs here).
    await h.db.volume.update({ where: { id: volume.volumeId }, data: { state: 'available' } });
    await h.db.pendingJob.deleteMany({ where: { jobId: `${volume.volumeId}.create` } });
    await h.client.call('PATCH', `/v1/volumes/${volume.volumeId}`, { size: 3 });
    const vpc = await h.client.call('POST', '/v1/vpcs', { cidrBlock: '10.78.0.0/16' });
    expect(vpc.vpcId).toMatch(/^vpc-/);

    const rows = await h.db.pendingJob.findMany({
      where: { name: { in: ['volume.resize', 'network.apply'] } },
    });
    const resize = rows.find((r) => r.name === 'volume.resize')!;
    expect(resize.jobId).toMatch(new RegExp(`^${volume.volumeId}\\.resize\\.\\d+$`));
    expect(JSON.parse(resize.payload)).toEqual({ volumeId: volume.volumeId, sizeGiB: 3 });
    const applies = rows.filter((r) => r.name === 'network.apply');
    expect(applies.length).toBeGreaterThanOrEqual(1);
    const ids = rows.map((r) => r.jobId).sort();
    for (const r of rows) expect(await h.queue.jobState(r.name as any, r.jobId)).toBe('waiting');

    // Redis restarts without persistence: every job is gone.
    await redis.stop();
    await redis.start();
    await untilAvailable(h);
    for (const r of rows) expect(await h.queue.jobState(r.name as any, r.jobId)).toBe('unknown');

    const requeued = await requeuePendingJobs(deps, { minAgeMs: 0 });
    expect(requeued.filter((id) => ids.includes(id)).sort()).toEqual(ids);
    for (const r of rows) expect(await h.queue.jobState(r.name as any, r.jobId)).toBe('waiting');
    // Nothing twice: the jobs are there, so a second pass enqueues nothing.
    expect(await requeuePendingJobs(deps, { minAgeMs: 0 })).toEqual([]);
  });

  it('a job deletes its row when it finishes, or fails for good; a retry keeps it', async () => {
    await h.db.pendingJob.createMany({
      data: [
        { jobId: 'vol-x.resize.1', name: 'volume.resize', payload: '{}' },
        { jobId: 'vol-y.resize.1', name: 'volume.resize', payload: '{}' },
      ],
    });
    let fail = false;
    const handlers = finishingOutboxRows(deps, {
      'volume.resize': async () => {
        if (fail) throw new Error('host busy');
      },
    } as unknown as JobHandlers);
    const job = (id: string, attemptsMade: number) =>
      ({ id, attemptsMade, opts: { attempts: 3 } }) as unknown as Job;
    const resize = handlers['volume.resize'];

    await resize({ volumeId: 'vol-x', sizeGiB: 2 }, job('vol-x.resize.1', 0));
    expect(await h.db.pendingJob.count({ where: { jobId: 'vol-x.resize.1' } })).toBe(0);

    fail = true;
    await expect(
      resize({ volumeId: 'vol-y', sizeGiB: 2 }, job('vol-y.resize.1', 0)),
    ).rejects.toThrow('host busy');
    expect(await h.db.pendingJob.count({ where: { jobId: 'vol-y.resize.1' } })).toBe(1);
    await expect(
      resize({ volumeId: 'vol-y', sizeGiB: 2 }, job('vol-y.resize.1', 2)),
    ).rejects.toThrow('host busy');
    expect(await h.db.pendingJob.count({ where: { jobId: 'vol-y.resize.1' } })).toBe(0);
  });
});

/** The queue reconnects on its own within a second or two after a restart. */
async function untilAvailable(h: Harness) {
  for (let i = 0; ; i++) {
    try {
      return await h.queue.assertAvailable();
    } catch (e) {
      if (i > 100) throw e;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}
