import {
  defaultImage,
  destroyAndListLeftovers,
  startMinicloud,
  until,
  type MinicloudUnderTest,
} from '@minicloud/testkit';
import { startOwnRedis } from '@minicloud/testkit/redis-server';

type OwnRedis = Awaited<ReturnType<typeof startOwnRedis>>;

interface Answer {
  kind: 'launch' | 'volume';
  status: number;
  code?: string;
  ms: number;
  id?: string;
}

/**
 * minicloud (API + worker, libvirt test:///default) on a Redis of the test's own, killed mid-burst
 * (no persistence: every queued job is lost) and started again. While it is down, changes answer
 * 503 within 5 s; afterwards every acknowledged launch runs and every acknowledged volume exists,
 * and nothing refused was made. The reconciler is held off (one pass at start), so what brings
 * the lost work back is the outbox.
 */
describe('minicloud with its Redis stopped mid-burst and restarted', () => {
  let redis: OwnRedis;
  let mc: MinicloudUnderTest | undefined;
  beforeAll(async () => {
    // With a password, read from a file as scripts/setup.sh sets it up.
    redis = await startOwnRedis({ password: true });
    // minicloud starts while its Redis is down: it must wait, saying so, and go on once it is up.
    await redis.stop();
    let redisLater: Promise<void> | undefined;
    mc = await startMinicloud({
      extraEnv: {
        MINICLOUD_REDIS_URL: redis.url,
        MINICLOUD_REDIS_PASSWORD_FILE: redis.passwordFile!,
        MINICLOUD_LIBVIRT_URI: 'test:///default',
        MINICLOUD_VIRT_TYPE: 'test',
        MINICLOUD_RECONCILE_INTERVAL_SECONDS: '3600',
        // One job at a time: work is still waiting in Redis when it is killed.
        MINICLOUD_WORKER_CONCURRENCY: '1',
      },
      onOutput: (text) => {
        if (text.includes('waiting for Redis')) redisLater ??= redis.start();
      },
    });
    await redisLater;
  });
  afterAll(async () => {
    await redis?.start().catch(() => undefined);
    const leftovers = await destroyAndListLeftovers(mc);
    await redis?.destroy();
    expect(leftovers).toEqual([]);
  });

  it('start-up waited for Redis with a clear message', () => {
    expect(mc!.logs()).toContain(`waiting for Redis at ${redis.url}`);
    expect(mc!.logs()).toMatch(/Redis at \S+: available after \d+ s/);
  });

  it('503s while down, no hang, every acknowledged action done after it returns', async () => {
    const image = await defaultImage(mc!);
    const client = mc!.client;
    const answers: Answer[] = [];
    let n = 0;
    const fire = async (): Promise<Answer> => {
      const kind = n++ % 2 === 0 ? 'launch' : 'volume';
      const started = Date.now();
      const r =
        kind === 'launch'
          ? await client.request('POST', '/v1/instances', {
              imageId: image.imageId,
              instanceType: 't3.nano',
            })
          : await client.request('POST', '/v1/volumes', { size: 1 });
      const answer: Answer = {
        kind,
        status: r.status,
        code: r.body?.error?.code,
        ms: Date.now() - started,
        id: kind === 'launch' ? r.body?.instances?.[0]?.instanceId : r.body?.volumeId,
      };
      answers.push(answer);
      return answer;
    };
    const health = async () => {
      const res = await fetch(`${mc!.baseUrl}/healthz`);
      return { status: res.status, body: (await res.json()) as any };
    };
    expect((await health()).status).toBe(200);

    // Up: accepted.
    for (const a of await Promise.all(Array.from({ length: 6 }, fire))) expect(a.status).toBe(202);
    // Killed in the middle of a burst: each request is accepted or refused, never left hanging.
    const burst = Array.from({ length: 12 }, (_v, i) =>
      new Promise((r) => setTimeout(r, i * 50)).then(fire),
    );
    await new Promise((r) => setTimeout(r, 200));
    await redis.stop();
    await Promise.all(burst);
    // Down: refused, the database still readable, /healthz names Redis.
    for (const a of await Promise.all(Array.from({ length: 6 }, fire))) {
      expect(a).toMatchObject({ status: 503, code: 'ServiceUnavailable' });
    }
    expect((await client.request('GET', '/v1/instances')).status).toBe(200);
    const down = await health();
    expect(down.status).toBe(503);
    expect(down.body.down).toEqual(['redis']);

    await redis.start();
    await until('healthz 200', async () => (await health()).status === 200, 30_000);
    for (const a of await Promise.all(Array.from({ length: 4 }, fire))) expect(a.status).toBe(202);

    for (const a of answers) {
      expect([202, 503]).toContain(a.status);
      expect(a.ms).toBeLessThan(5000);
    }
    const refused = answers.filter((a) => a.status === 503);
    expect(refused.length).toBeGreaterThanOrEqual(6);
    const acked = answers.filter((a) => a.status === 202);
    const launched = acked.filter((a) => a.kind === 'launch').map((a) => a.id!);
    const volumes = acked.filter((a) => a.kind === 'volume').map((a) => a.id!);

    // Every acknowledged action is done; nothing refused was made.
    await until(
      'every acknowledged launch running and volume available',
      async () => {
        const instances = (await client.call('GET', '/v1/instances')).instances as any[];
        const vols = (await client.call('GET', '/v1/volumes')).volumes as any[];
        const running = new Set(
          instances.filter((i) => i.state.name === 'running').map((i) => i.instanceId),
        );
        const available = new Set(
          vols.filter((v) => v.state === 'available').map((v) => v.volumeId),
        );
        return launched.every((id) => running.has(id)) && volumes.every((id) => available.has(id));
      },
      120_000,
    );
    const instances = (await client.call('GET', '/v1/instances')).instances as any[];
    expect(instances.map((i) => i.instanceId).sort()).toEqual([...launched].sort());
    const dataVolumes = ((await client.call('GET', '/v1/volumes')).volumes as any[]).filter(
      (v) => v.attachments.length === 0,
    );
    expect(dataVolumes.map((v) => v.volumeId).sort()).toEqual([...volumes].sort());
    // Jobs were lost with Redis; the outbox queued them again.
    const requeued = mc!.logs().match(/outbox: re-enqueued .*/g) ?? [];
    expect(requeued.length).toBeGreaterThan(0);
    console.log(
      `redis outage: ${requeued.join('; ')}; ` +
        ` ${acked.length} acknowledged (${launched.length} launches, ${volumes.length} volumes), ${refused.length} refused, slowest answer ${Math.max(...answers.map((a) => a.ms))} ms`,
    );
  });
});
