/**
 * A bound on native libvirt calls in flight.
 *
 * Every @unraid/libvirt call is an N-API AsyncWorker: it blocks one thread of libuv's pool (4
 * threads unless UV_THREADPOOL_SIZE says otherwise, shared with fs, dns.lookup, crypto and zlib)
 * until libvirtd answers. A wedged libvirtd never answers, and a running native call cannot be
 * cancelled, so without a bound a handful of calls would take the whole pool and every file read
 * of the process would hang behind them. With the gate, at most `size` threads can ever wait on
 * libvirt; further calls wait here, on the event loop, and give up at their deadline.
 */
export class CallGate {
  private busy = 0;
  private readonly waiting: { resolve: () => void }[] = [];

  constructor(readonly size: number) {
    if (!Number.isInteger(size) || size < 1) throw new Error(`gate size must be >= 1, got ${size}`);
  }

  /** Native calls holding a slot (running, or stuck inside libvirt). */
  get inUse(): number {
    return this.busy;
  }

  /**
   * Take a slot. Resolves with a release function (call it exactly once), or rejects with
   * `onTimeout()` when no slot frees up before `deadline` (epoch ms).
   */
  acquire(deadline: number, onTimeout: () => Error): Promise<() => void> {
    if (this.busy < this.size) {
      this.busy++;
      return Promise.resolve(this.releaser());
    }
    return new Promise((resolve, reject) => {
      const entry = {
        resolve: () => {
          clearTimeout(timer);
          resolve(this.releaser());
        },
      };
      const timer = setTimeout(
        () => {
          const i = this.waiting.indexOf(entry);
          if (i >= 0) this.waiting.splice(i, 1);
          reject(onTimeout());
        },
        Math.max(0, deadline - Date.now()),
      );
      this.waiting.push(entry);
    });
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      // The slot passes straight to the next waiter: `busy` stays the same.
      if (next) next.resolve();
      else this.busy--;
    };
  }
}
