import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';

/** One command for the relay: what `run` was asked, already validated. */
export interface RelayRequest {
  command: string;
  args: readonly string[];
  timeoutMs: number;
  input?: string | Buffer;
  env: NodeJS.ProcessEnv;
  cwd?: string;
}

/** What the relay's child saw: execFile's outcome, as plain data. */
export interface RelayReply {
  stdout: string;
  stderr: string;
  /** null on success; `code` is the exit code, or an errno string such as ENOENT. */
  error: { code: number | string | null; killed?: boolean } | null;
}

interface Pending {
  resolve: (reply: RelayReply) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

const CHILD_SCRIPT = fileURLToPath(new URL('./relay-child.mjs', import.meta.url));
/** The child is ended after this long without work (started again on the next command). */
const IDLE_MS = 30_000;
/** Beyond a command's own timeout (enforced by the child): the child itself is stuck. */
const GRACE_MS = 10_000;

/**
 * Host commands started by a small child process instead of this one (see relay-child.mjs for
 * why). One child per process, started on first use; it ends when idle or when this process
 * exits, and a child that dies fails only the commands it was running.
 */
export class CommandRelay {
  private child: ChildProcessWithoutNullStreams | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private idleTimer: NodeJS.Timeout | undefined;

  exec(request: RelayRequest): Promise<RelayReply> {
    const child = this.child ?? this.start();
    const id = this.nextId++;
    clearTimeout(this.idleTimer);
    return new Promise<RelayReply>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.settle(id)?.reject(new Error('the command relay did not answer'));
        this.stop(); // stuck: the next command starts a new child
      }, request.timeoutMs + GRACE_MS);
      this.pending.set(id, { resolve, reject, timer });
      this.hold(true);
      const input = request.input === undefined ? undefined : Buffer.from(request.input);
      child.stdin.write(
        `${JSON.stringify({
          id,
          command: request.command,
          args: request.args,
          timeoutMs: request.timeoutMs,
          input: input?.toString('base64'),
          env: request.env,
          cwd: request.cwd,
        })}\n`,
      );
    });
  }

  /** End the child now (tests, shutdown); running commands fail. */
  stop(): void {
    const child = this.child;
    if (!child) return;
    this.child = undefined;
    clearTimeout(this.idleTimer);
    child.stdin.end();
    child.kill('SIGKILL');
  }

  private start(): ChildProcessWithoutNullStreams {
    // Only the script: the parent's loader flags (tsx, jest's VM modules) are not wanted here.
    const child = spawn(process.execPath, [CHILD_SCRIPT], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: process.env,
    });
    this.child = child;
    child.stdin.on('error', () => {}); // a dead child is handled by 'exit'
    child.stderr.on('data', (chunk: Buffer) => process.stderr.write(chunk));
    createInterface({ input: child.stdout }).on('line', (line) => {
      const reply = JSON.parse(line) as RelayReply & { id: number };
      this.settle(reply.id)?.resolve(reply);
    });
    child.on('exit', (code, signal) => {
      if (this.child === child) this.child = undefined;
      for (const id of [...this.pending.keys()]) {
        this.settle(id)?.reject(
          new Error(`the command relay exited (${signal ?? code}) while the command ran`),
        );
      }
    });
    return child;
  }

  private settle(id: number): Pending | undefined {
    const p = this.pending.get(id);
    if (!p) return undefined;
    this.pending.delete(id);
    clearTimeout(p.timer);
    if (this.pending.size === 0) {
      this.hold(false);
      clearTimeout(this.idleTimer);
      this.idleTimer = setTimeout(() => this.stop(), IDLE_MS).unref();
    }
    return p;
  }

  /** Keep this process alive while commands run, and only then. */
  private hold(busy: boolean): void {
    const child = this.child;
    if (!child) return;
    for (const handle of [child, child.stdin, child.stdout, child.stderr] as {
      ref?: () => void;
      unref?: () => void;
    }[]) {
      if (busy) handle.ref?.();
      else handle.unref?.();
    }
  }
}
