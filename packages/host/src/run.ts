import { execFile, spawn } from 'node:child_process';

/** The one place where minicloud runs host commands: argv arrays, never a shell, always a timeout. */

export interface RunOptions {
  /** Kill the command after this many milliseconds (default 30 s). */
  timeoutMs?: number;
  /** Data written to the command's standard input. */
  input?: string | Buffer;
  /** Exit codes that count as success besides 0. */
  okExitCodes?: number[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export interface RunResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

export class HostCommandError extends Error {
  constructor(
    readonly command: string,
    readonly args: readonly string[],
    readonly exitCode: number | null,
    readonly stderr: string,
    readonly timedOut: boolean,
  ) {
    const what = timedOut ? 'timed out' : `exited with ${exitCode ?? 'a signal'}`;
    super(`${command} ${args.join(' ')} ${what}: ${stderr.trim().slice(0, 500)}`);
    this.name = 'HostCommandError';
  }
}

export type CommandRunner = (
  command: string,
  args: readonly string[],
  options?: RunOptions,
) => Promise<RunResult>;

const DEFAULT_TIMEOUT_MS = 30_000;
const SAFE_COMMAND = /^[A-Za-z0-9_./-]+$/;

export const run: CommandRunner = (command, args, options = {}) => {
  if (!SAFE_COMMAND.test(command))
    throw new Error(`refusing to run command ${JSON.stringify(command)}`);
  const timeout = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    const child = execFile(
      command,
      [...args],
      {
        timeout,
        killSignal: 'SIGKILL',
        maxBuffer: 64 * 1024 * 1024,
        env: options.env ?? process.env,
        cwd: options.cwd,
        encoding: 'utf8',
      },
      (error, stdout, stderr) => {
        if (!error) return resolve({ stdout, stderr, exitCode: 0 });
        const err = error as NodeJS.ErrnoException & { code?: unknown; killed?: boolean };
        const exitCode = typeof err.code === 'number' ? err.code : null;
        if (exitCode !== null && options.okExitCodes?.includes(exitCode)) {
          return resolve({ stdout, stderr, exitCode });
        }
        const timedOut = err.killed === true && exitCode === null;
        const detail = typeof err.code === 'string' ? `${err.code} ${stderr}` : stderr;
        reject(new HostCommandError(command, args, exitCode, detail, timedOut));
      },
    );
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
};

/**
 * Start a long-running process detached from this one (it outlives the worker), with its
 * output appended to a log file. Returns its PID.
 */
export function startDetached(
  command: string,
  args: readonly string[],
  logFd: number | 'ignore' = 'ignore',
): number {
  if (!SAFE_COMMAND.test(command))
    throw new Error(`refusing to run command ${JSON.stringify(command)}`);
  const child = spawn(command, [...args], {
    detached: true,
    stdio: ['ignore', logFd, logFd],
  });
  child.unref();
  if (child.pid === undefined)
    throw new HostCommandError(command, args, null, 'spawn failed', false);
  return child.pid;
}

/** True when a command exists on PATH (checked without a shell). */
export async function commandExists(command: string): Promise<boolean> {
  try {
    await run('which', [command], { timeoutMs: 5_000 });
    return true;
  } catch {
    return false;
  }
}
