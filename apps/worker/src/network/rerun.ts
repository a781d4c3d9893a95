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
