/**
 * One operation at a time per key (an instance, an image, a bridge, an nft table) inside this
 * process: operations on one key run one after another in call order; different keys run
 * concurrently. Pure promise bookkeeping, no I/O.
 */
export class KeyedLock {
  private readonly tails = new Map<string, Promise<void>>();

  /** An operation on the key is running or queued. */
  isHeld(key: string): boolean {
    return this.tails.has(key);
  }

  /** Keys with an operation running or queued (for tests and diagnostics). */
  get busyKeys(): string[] {
    return [...this.tails.keys()];
  }

  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const tail = previous.then(() => mine);
    this.tails.set(key, tail);
    await previous;
    try {
      return await fn();
    } finally {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}
