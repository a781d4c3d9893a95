/**
 * One run of `fn` at a time; every call that arrives during a run shares the one run after it
 * (a dirty flag), so that run reads the database after all of their changes and no change is
 * missed, however many calls pile up.
 */
export class Rerun<T> {
  private running: Promise<T> | null = null;
  private queued: Promise<T> | null = null;

  run(fn: () => Promise<T>): Promise<T> {
    if (!this.running) {
      const p = fn();
      this.running = p;
      const clear = () => {
        if (this.running === p) this.running = null;
      };
      p.then(clear, clear);
      return p;
    }
    this.queued ??= this.running.then(noop, noop).then(() => {
      this.queued = null;
      return this.run(fn);
    });
    return this.queued;
  }
}

function noop(): void {}

/** Run fn over items, at most `limit` at a time. */
export async function forEachLimit<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
}

export function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
