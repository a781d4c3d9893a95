import { startApiOnly } from '@minicloud/testkit/api-harness';
import { startOwnRedis } from '@minicloud/testkit/redis-server';

type Harness = Awaited<ReturnType<typeof startApiOnly>>;
type OwnRedis = Awaited<ReturnType<typeof startOwnRedis>>;

/** A request with its answer time: with a dependency down, every answer must come within 5 s. */
async function timed(h: Harness, method: string, path: string, body?: unknown) {
  const started = Date.now();
  const r = await h.client.request(method, path, body);
  return { ...r, ms: Date.now() - started };
}

async function health(h: Harness) {
  const started = Date.now();
  const res = await fetch(`${h.baseUrl}/healthz`);
  return { status: res.status, body: (await res.json()) as any, ms: Date.now() - started };
}

describe('the API with its own Redis stopped and restarted', () => {
  let redis: OwnRedis;
  let h: Harness;
  beforeAll(async () => {
    redis = await startOwnRedis();
    h = await startApiOnly({ networkCidr: '10.248.0.0/24', redisUrl: redis.url });
  });
  afterAll(async () => {
    await redis?.start().catch(() => undefined);
    await h?.close();
    await redis?.destroy();
  });

  it('/healthz: 200 with every dependency up, 503 naming Redis while it is down', async () => {
    const up = await health(h);
    expect(up.status).toBe(200);
    expect(up.body).toMatchObject({
      status: 'ok',
      down: [],
      checks: { database: { status: 'up' }, redis: { status: 'up' } },
    });

    await redis.stop();
    const down = await health(h);
    expect(down.status).toBe(503);
    expect(down.body.down).toEqual(['redis']);
    expect(down.body.checks.database.status).toBe('up');
    expect(down.body.checks.redis.status).toBe('down');
    expect(down.ms).toBeLessThan(5000);

    await redis.start();
    const back = await until(async () => {
      const r = await health(h);
      return r.status === 200 ? r : null;
    });
    expect(back.body.down).toEqual([]);
  });

  it('changes answer 503 ServiceUnavailable within 5 s while Redis is down, write nothing, and work again after', async () => {
    const before = await h.db.volume.count();
    await redis.stop();
    const answers = await Promise.all([
      timed(h, 'POST', '/v1/volumes', { size: 1 }),
      timed(h, 'POST', '/v1/vpcs', { cidrBlock: '10.77.0.0/16' }),
      timed(h, 'POST', '/v1/volumes', { size: 2 }),
    ]);
    for (const a of answers) {
      expect(a.status).toBe(503);
      expect(a.body.error.code).toBe('ServiceUnavailable');
      expect(a.ms).toBeLessThan(5000);
    }
    expect(await h.db.volume.count()).toBe(before);
    expect(await h.db.pendingJob.count({ where: { name: 'volume.create' } })).toBe(0);

    // Reads need only the database; so do key pairs.
    const list = await timed(h, 'GET', '/v1/volumes');
    expect(list.status).toBe(200);
    const key = await timed(h, 'POST', '/v1/key-pairs', { keyName: 'outage-key' });
    expect(key.status).toBe(201);

    await redis.start();
    const created = await until(async () => {
      const r = await h.client.request('POST', '/v1/volumes', { size: 1 });
      return r.status === 201 || r.status === 202 ? r : null;
    });
    const volumeId = created.body.volumeId as string;
    expect(await h.queue.jobState('volume.create', `${volumeId}.create`)).toBe('waiting');
    expect(
      await h.db.pendingJob.findUnique({ where: { jobId: `${volumeId}.create` } }),
    ).toMatchObject({ name: 'volume.create' });
  });
});

async function until<T>(fn: () => Promise<T | null>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => null);
    if (v) return v;
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 200));
  }
}
