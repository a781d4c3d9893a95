/**
 * The reconciler's schedule: a pass now, then one every `intervalMs`, never two at once. A pass
 * has a deadline: one that hangs (a stuck host call, a database or Redis that stopped answering)
 * is given up at `timeoutMs`, its signal aborted (it stops at its next step), and the next pass
 * runs on schedule instead of waiting behind it for ever.
 */
export interface ReconcileLoopOptions {
  intervalMs: number;
  timeoutMs: number;
  log: (msg: string) => void;
}

export type ReconcilePass = (signal: AbortSignal) => Promise<void>;

export class ReconcileDeadlineError extends Error {
  constructor(timeoutMs: number) {
    super(`reconcile pass exceeded its deadline of ${timeoutMs} ms`);
    this.name = 'ReconcileDeadlineError';
  }
}

export interface ReconcileLoop {
  /** Run a pass now (or wait for the one running); resolves by its deadline at the latest. */
  runNow(): Promise<void>;
  close(): Promise<void>;
}

export function startReconcileLoop(
  pass: ReconcilePass,
  options: ReconcileLoopOptions,
): ReconcileLoop {
  const { intervalMs, timeoutMs, log } = options;
  let running: Promise<void> | null = null;

  const runPass = async () => {
    const controller = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'deadline'>((resolve) => {
      timer = setTimeout(() => resolve('deadline'), timeoutMs);
    });
    const work = pass(controller.signal).then(
      () => 'done' as const,
      (e: unknown) => {
        if (!controller.signal.aborted) log(`reconciler failed: ${(e as Error)?.message ?? e}`);
        return 'done' as const;
      },
    );
    const outcome = await Promise.race([work, deadline]);
    clearTimeout(timer);
    if (outcome === 'deadline') {
      controller.abort(new ReconcileDeadlineError(timeoutMs));
      log(
        `reconciler: pass exceeded its deadline of ${timeoutMs} ms; abandoned (it stops at its next step), the next pass runs on schedule`,
      );
    }
  };

  const runNow = () => (running ??= runPass().finally(() => (running = null)));
  const timer = setInterval(() => void runNow(), intervalMs);
  return {
    runNow,
    async close() {
      clearInterval(timer);
      await running;
    },
  };
}
