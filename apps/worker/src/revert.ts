/**
 * An undo list (after incus' shared/revert): each host change registers how to undo it; if a
 * later step fails, `undo()` runs them newest first. `success()` keeps the changes.
 */
export class Revert {
  private steps: { what: string; undo: () => Promise<void> }[] = [];

  add(what: string, undo: () => Promise<void>): void {
    this.steps.push({ what, undo });
  }

  success(): void {
    this.steps = [];
  }

  /** Undo everything registered; undo failures are collected, never hide the original error. */
  async undo(log: (msg: string) => void = () => {}): Promise<void> {
    const steps = this.steps.reverse();
    this.steps = [];
    for (const step of steps) {
      try {
        await step.undo();
      } catch (e) {
        log(`undo of ${step.what} failed: ${(e as Error).message}`);
      }
    }
  }
}
