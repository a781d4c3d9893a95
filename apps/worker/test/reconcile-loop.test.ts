import type { WorkerDeps } from '../src/context.js';
import { ReconcileDeadlineError, startReconcileLoop } from '../src/reconcile-loop.js';
import { reconcile } from '../src/reconciler.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function eventually(cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await sleep(10);
  }
}

describe('startReconcileLoop', () => {
  it('gives up a hung pass at its deadline, aborts it, and runs the next passes', async () => {
    const logs: string[] = [];
    const signals: AbortSignal[] = [];
    let finished = 0;
    const loop = startReconcileLoop(
      async (signal) => {
        signals.push(signal);
        if (signals.length === 1) await new Promise(() => undefined); // hangs for ever
        finished++;
      },
      { intervalMs: 50, timeoutMs: 300, log: (m) => logs.push(m) },
    );
    const t0 = Date.now();
    await loop.runNow();
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(signals[0]?.aborted).toBe(true);
    expect(signals[0]?.reason).toBeInstanceOf(ReconcileDeadlineError);
    expect(logs.join('\n')).toContain('exceeded its deadline of 300 ms');
    await eventually(() => finished >= 2);
    await loop.close();
    expect(signals.slice(1).every((s) => !s.aborted)).toBe(true);
  });

  it('never runs two passes at once, and logs a failed pass', async () => {
    const logs: string[] = [];
    let running = 0;
    let maxRunning = 0;
    let passes = 0;
    const loop = startReconcileLoop(
      async () => {
        running++;
        maxRunning = Math.max(maxRunning, running);
        await sleep(60);
        running--;
        if (++passes === 2) throw new Error('database is away');
      },
      { intervalMs: 10, timeoutMs: 5_000, log: (m) => logs.push(m) },
    );
    await eventually(() => passes >= 4);
    await loop.close();
    expect(maxRunning).toBe(1);
    expect(logs).toContain('reconciler failed: database is away');
  });
});

describe('reconcile', () => {
  it('does nothing once its pass was given up', async () => {
    const touched: string[] = [];
    const deps = new Proxy({} as WorkerDeps, {
      get: (_, key) => {
        touched.push(String(key));
        return undefined;
      },
    });
    const controller = new AbortController();
    controller.abort(new ReconcileDeadlineError(1));
    await expect(reconcile(deps, { signal: controller.signal })).rejects.toBeInstanceOf(
      ReconcileDeadlineError,
    );
    expect(touched.filter((k) => !['db', 'settings', 'locks'].includes(k))).toEqual([]);
  });
});
