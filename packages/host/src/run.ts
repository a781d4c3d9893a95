import { execFile, spawn } from 'node:child_process';
import { CommandRelay, type RelayReply, type RelayRequest } from './relay.js';

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

const relay = new CommandRelay();

/**
 * Run a host command and collect its output. Commands start from a small relay process (forks
 * from this big one would stall its event loop); MINICLOUD_HOST_RELAY=off starts them directly.
 */
export const run: CommandRunner = async (command, args, options = {}) => {
  if (!SAFE_COMMAND.test(command))
    throw new Error(`refusing to run command ${JSON.stringify(command)}`);
  const request = {
    command,
    args: [...args],
    timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    input: options.input,
    env: options.env ?? process.env,
    cwd: options.cwd,
  };
  let reply: RelayReply;
  try {
    reply =
      process.env.MINICLOUD_HOST_RELAY === 'off'
        ? await execDirect(request)
        : await relay.exec(request);
  } catch (e) {
    throw new HostCommandError(command, args, null, (e as Error).message, false);
  }
  const { stdout, stderr, error } = reply;
  if (!error) return { stdout, stderr, exitCode: 0 };
  const exitCode = typeof error.code === 'number' ? error.code : null;
  if (exitCode !== null && options.okExitCodes?.includes(exitCode)) {
    return { stdout, stderr, exitCode };
  }
  const timedOut = error.killed === true && exitCode === null;
  const detail = typeof error.code === 'string' ? `${error.code} ${stderr}` : stderr;
  throw new HostCommandError(command, args, exitCode, detail, timedOut);
};

/** Start the command from this process (what the relay's child does for it). */
function execDirect(request: RelayRequest): Promise<RelayReply> {
  return new Promise((resolve) => {
    const child = execFile(
      request.command,
      [...request.args],
      {
        timeout: request.timeoutMs,
        killSignal: 'SIGKILL',
        maxBuffer: 64 * 1024 * 1024,
        env: request.env,
        cwd: request.cwd,
        encoding: 'utf8',
      },
      (error, stdout, stderr) => {
        const err = error as (NodeJS.ErrnoException & { killed?: boolean }) | null;
        resolve({
          stdout,
          stderr,
          error: err
            ? {
                code: (err.code as number | string | undefined) ?? null,
                killed: err.killed === true,
              }
            : null,
        });
      },
    );
    if (request.input !== undefined) child.stdin?.end(request.input);
  });
}

/** End the relay's child now (tests and shutdown; it also ends by itself when idle). */
export function stopCommandRelay(): void {
  relay.stop();
}

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
