import { Worker } from 'node:worker_threads';

/**
 * Host commands are started from worker threads, not from the main thread. Starting a process
 * (fork + exec) is synchronous in Node: the calling thread waits until the child has exec'd,
 * which on a busy host is tens of milliseconds per command, and on the main thread that wait
 * stops everything else (the API, the queue, other jobs). A thread here waits instead; the
 * result comes back as a message. Commands run exactly as execFile runs them (argv array, no
 * shell, timeout with SIGKILL).
 */

export interface SpawnRequest {
  command: string;
  args: string[];
  timeoutMs: number;
  input?: string | Buffer;
  /** The child's environment (a plain copy: the thread has its own process.env). */
  env: NodeJS.ProcessEnv;
  cwd?: string;
}

/** What execFile reported: its error's code (a number: exit code; a string: errno), if any. */
export interface SpawnOutcome {
  stdout: string;
  stderr: string;
  failed: boolean;
  code: number | string | null;
  killed: boolean;
}

// The thread's code, as plain JavaScript (it runs without the TypeScript loader).
const THREAD_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { execFile } = require('node:child_process');
parentPort.on('message', ({ id, req }) => {
  let child;
  try {
    child = execFile(req.command, req.args, {
      timeout: req.timeoutMs,
      killSignal: 'SIGKILL',
      maxBuffer: 64 * 1024 * 1024,
      env: req.env,
      cwd: req.cwd,
      encoding: 'utf8',
    }, (error, stdout, stderr) => {
      parentPort.postMessage({ id, out: {
        stdout, stderr, failed: !!error,
        code: error ? (error.code ?? null) : 0,
        killed: !!(error && error.killed),
      } });
    });
  } catch (e) {
    parentPort.postMessage({ id, thrown: { message: String(e && e.message), code: e && e.code } });
    return;
  }
  if (req.input !== undefined) child.stdin.end(req.input);
});
`;

type Pending = { resolve: (o: SpawnOutcome) => void; reject: (e: Error) => void };

class SpawnThread {
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  dead = false;

  constructor() {
    this.worker = new Worker(THREAD_SOURCE, { eval: true, execArgv: [] }); // no loaders: plain JS
    this.worker.on(
      'message',
      (m: { id: number; out?: SpawnOutcome; thrown?: { message: string; code?: unknown } }) => {
        const p = this.pending.get(m.id);
        if (!p) return;
        this.settle(m.id);
        if (m.out) p.resolve(m.out);
        else p.reject(Object.assign(new Error(m.thrown?.message), { code: m.thrown?.code }));
      },
    );
    const fail = (e: Error) => {
      this.dead = true;
      for (const [id, p] of this.pending) {
        this.settle(id);
        p.reject(e);
      }
    };
    this.worker.on('error', fail);
    this.worker.on('exit', (code) => fail(new Error(`spawn thread exited with ${code}`)));
    // An idle thread never keeps the process alive (after the listeners: adding one re-refs).
    this.worker.unref();
  }

  get load(): number {
    return this.pending.size;
  }

  spawn(req: SpawnRequest): Promise<SpawnOutcome> {
    return new Promise((resolve, reject) => {
      const id = this.nextId++;
      if (this.pending.size === 0) this.worker.ref(); // a command in flight keeps it alive
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, req });
    });
  }

  private settle(id: number): void {
    this.pending.delete(id);
    if (this.pending.size === 0) this.worker.unref();
  }
}

const THREADS = 2;
const threads: SpawnThread[] = [];

/** Run one command on the least busy spawn thread (started on first use, replaced if one dies). */
export function spawnInThread(req: SpawnRequest): Promise<SpawnOutcome> {
  for (let i = threads.length - 1; i >= 0; i--) if (threads[i]!.dead) threads.splice(i, 1);
  while (threads.length < THREADS) threads.push(new SpawnThread());
  const thread = threads.reduce((a, b) => (b.load < a.load ? b : a));
  return thread.spawn(req);
}
