/**
 * Calls that arrive while a flush runs are served together by the next flush: many concurrent
 * requests (taps of a batch of launches, their firewall ports) become one host operation instead
 * of one each. The first call flushes at once (no added latency). Each item gets its own
 * outcome; a flush that throws fails every item of its batch. Pure promise bookkeeping, no I/O.
 */
export class Batcher<T, R> {
  private queue: { item: T; resolve: (r: R) => void; reject: (e: unknown) => void }[] = [];
  private running = false;

  constructor(
    private readonly flush: (items: readonly T[]) => Promise<readonly PromiseSettledResult<R>[]>,
  ) {}

  add(item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      if (!this.running) void this.pump();
    });
  }

  private async pump(): Promise<void> {
    this.running = true;
    while (this.queue.length) {
      const batch = this.queue;
      this.queue = [];
      try {
        const results = await this.flush(batch.map((b) => b.item));
        batch.forEach((b, i) => {
          const r = results[i];
          if (r?.status === 'fulfilled') b.resolve(r.value);
          else b.reject(r ? r.reason : new Error('the batch returned no result for this item'));
        });
      } catch (e) {
        for (const b of batch) b.reject(e);
      }
    }
    this.running = false;
  }
}
