import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { NetworkDriverError } from '../errors.js';
import { sleep } from './linux-host.js';

/** Processes as procfs shows them, and the signals to stop ours. */
export class ProcessTable {
  private readonly kill: (pid: number, signal: NodeJS.Signals) => void;

  constructor(
    private readonly procRoot: string,
    kill?: (pid: number, signal: NodeJS.Signals) => void,
  ) {
    this.kill = kill ?? ((pid, signal) => process.kill(pid, signal));
  }

  /** Every pid in procfs. */
  async pids(): Promise<number[]> {
    let entries: string[];
    try {
      entries = await readdir(this.procRoot);
    } catch {
      return [];
    }
    return entries.filter((e) => /^[0-9]+$/.test(e)).map(Number);
  }

  /** argv of a live process; null when it is gone or a zombie (empty cmdline). */
  async cmdline(pid: number): Promise<string[] | null> {
    try {
      const raw = await readFile(join(this.procRoot, String(pid), 'cmdline'), 'utf8');
      if (raw.length === 0) return null;
      return raw.replace(/\0$/, '').split('\0');
    } catch {
      return null;
    }
  }

  /** Send a signal; false when the process is gone. */
  signal(pid: number, signal: NodeJS.Signals): boolean {
    try {
      this.kill(pid, signal);
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ESRCH') return false;
      throw e;
    }
  }

  /**
   * SIGTERM, wait up to 2 s, then SIGKILL. Only call with a pid verified to be ours. (A killed
   * daemon whose parent is gone may linger as a zombie when PID 1 does not reap; its cmdline is
   * empty, which counts as gone.)
   */
  async stop(pid: number): Promise<void> {
    const before = await this.cmdline(pid);
    if (!before) return;
    // Gone means: no such process, or a zombie (its sockets are closed only by then; an exiting
    // process already has an empty cmdline while it still holds its listening sockets), or the
    // pid now belongs to another program.
    const gone = async () => {
      if (await this.exited(pid)) return true;
      const now = await this.cmdline(pid);
      return now !== null && !sameArgs(now, before);
    };
    if (!this.signal(pid, 'SIGTERM')) return;
    for (let i = 0; i < 200; i++) {
      if (await gone()) return;
      await sleep(10);
    }
    this.signal(pid, 'SIGKILL');
    for (let i = 0; i < 100; i++) {
      if (await gone()) return;
      await sleep(10);
    }
    throw new NetworkDriverError(
      'NetworkDhcpServerError',
      `process ${pid} did not exit after SIGKILL`,
    );
  }

  /** True when the process no longer exists or is a zombie (state Z/X in /proc/PID/stat). */
  private async exited(pid: number): Promise<boolean> {
    let stat: string;
    try {
      stat = await readFile(join(this.procRoot, String(pid), 'stat'), 'utf8');
    } catch {
      return true;
    }
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state === 'Z' || state === 'X' || state === 'x';
  }
}

export function sameArgs(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
