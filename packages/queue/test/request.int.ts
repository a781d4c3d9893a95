import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  JobQueue,
  QueryTimeoutError,
  connectionFromUrl,
  startWorkers,
  type JobHandlers,
} from '../src/index.js';

/** Queries against the real Redis: asked by JobQueue.request, answered by startWorkers. */
const REDIS_URL = process.env.MINICLOUD_REDIS_URL ?? 'redis://127.0.0.1:6379';
/** The password scripts/setup.sh gives the local Redis (none on an older set-up). */
const REDIS_PASSWORD = (() => {
  try {
    const file = process.env.MINICLOUD_REDIS_PASSWORD_FILE ?? '/var/lib/minicloud-redis/password';
    return readFileSync(file, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
})();

const withPassword = (c: ReturnType<typeof connectionFromUrl>) => ({
  ...c,
  password: c.password ?? REDIS_PASSWORD,
});

function setup() {
  const options = {
    connection: withPassword(connectionFromUrl(REDIS_URL)),
    prefix: `minicloud-test-q${randomBytes(3).toString('hex')}`,
  };
  return { options, queue: new JobQueue(options) };
}

/** Workers whose only real handler is the console query. */
function answering(
  options: ReturnType<typeof setup>['options'],
  console: JobHandlers['instance.console'],
) {
  return startWorkers({ 'instance.console': console } as unknown as JobHandlers, {
    ...options,
    concurrency: 2,
  });
}

describe('JobQueue.request', () => {
  let ctx: ReturnType<typeof setup>;
  let workers: Awaited<ReturnType<typeof answering>> = [];

  beforeEach(() => {
    ctx = setup();
  });
  afterEach(async () => {
    await Promise.all(workers.map((w) => w.close()));
    workers = [];
    await ctx.queue.obliterate().catch(() => {});
    await ctx.queue.close();
  });

  it('returns what the worker answers, also at once and for many questions together', async () => {
    workers = answering(ctx.options, async ({ instanceId }) => ({
      output: `tail of ${instanceId}`,
    }));
    // The very first question: answered before the event stream's first blocking read.
    await expect(
      ctx.queue.request('instance.console', { instanceId: 'i-1' }, { timeoutMs: 5000 }),
    ).resolves.toEqual({ output: 'tail of i-1' });
    const ids = Array.from({ length: 20 }, (_, n) => `i-${n}`);
    const answers = await Promise.all(
      ids.map((instanceId) =>
        ctx.queue.request('instance.console', { instanceId }, { timeoutMs: 5000 }),
      ),
    );
    expect(answers.map((a) => a.output)).toEqual(ids.map((id) => `tail of ${id}`));
  });

  it('times out when no worker answers, and leaves no job behind', async () => {
    const started = Date.now();
    const error = await ctx.queue
      .request('instance.console', { instanceId: 'i-1' }, { timeoutMs: 300 })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(QueryTimeoutError);
    expect(Date.now() - started).toBeLessThan(3000);
    // A worker started later finds nothing to answer.
    let asked = 0;
    workers = answering(ctx.options, async () => {
      asked++;
      return { output: '' };
    });
    await new Promise((r) => setTimeout(r, 500));
    expect(asked).toBe(0);
  });

  it("reports the worker's failure once, without retrying", async () => {
    let tries = 0;
    workers = answering(ctx.options, async () => {
      tries++;
      throw new Error('console unreadable');
    });
    await expect(
      ctx.queue.request('instance.console', { instanceId: 'i-1' }, { timeoutMs: 5000 }),
    ).rejects.toThrow(/console unreadable/);
    expect(tries).toBe(1);
  });
});
