/**
 * Sequential e2e steps: each step is one jest test, run in order; once one fails, the later ones
 * fail at once saying which step broke, instead of failing confusingly on half-built state.
 */
export class StepChain {
  /** The name of the step that failed (null while every step has passed). */
  failed: string | null = null;

  async run(name: string, fn: () => Promise<void>): Promise<void> {
    if (this.failed) throw new Error(`not run: the earlier step "${this.failed}" failed`);
    try {
      await fn();
    } catch (e) {
      this.failed = name;
      throw e;
    }
  }
}

/**
 * `step(name, fn, timeoutMs?)` registers one step (call it inside a describe block);
 * `failed()` names the step that failed, or null (e.g. for afterAll to print the logs).
 */
export function sequentialSteps() {
  const chain = new StepChain();
  return {
    step: (name: string, fn: () => Promise<void>, timeoutMs?: number) =>
      it(name, () => chain.run(name, fn), timeoutMs),
    failed: () => chain.failed,
  };
}
