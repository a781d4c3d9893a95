/**
 * SSH to test guests (ssh2, as root, host keys not checked). This module imports nothing but
 * ssh2: the netns agent (netns-agent.ts) runs it inside a network namespace too.
 */
import ssh2, { type Client as SshClient } from 'ssh2';

const { Client } = ssh2;

export type { SshClient };

/** Where to connect; `localAddress` picks the client's source address. */
export interface SshTarget {
  host: string;
  privateKey: string;
  localAddress?: string;
}

/** What one command did: its exit code (-1 when it had none, e.g. killed) and its output. */
export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Settle with `p`, or reject with `error()` after `ms` (calling `onTimeout` first). */
export function withTimeout<T>(
  p: Promise<T>,
  ms: number,
  error: () => Error,
  onTimeout?: () => void,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      onTimeout?.();
      reject(error());
    }, ms);
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}

/** An open SSH connection, or a rejection within `timeoutMs`. */
export function sshConnect(target: SshTarget, timeoutMs = 20_000): Promise<SshClient> {
  const conn = new Client();
  const ready = new Promise<SshClient>((resolve, reject) => {
    conn
      .on('ready', () => resolve(conn))
      // Stays registered after `ready`: an error then settles nothing, but ssh2 needs a listener.
      .on('error', reject)
      .connect({
        host: target.host,
        port: 22,
        username: 'root',
        privateKey: target.privateKey,
        readyTimeout: timeoutMs,
        hostVerifier: () => true,
        ...(target.localAddress ? { localAddress: target.localAddress } : {}),
      });
  });
  return withTimeout(
    ready,
    timeoutMs,
    () => new Error(`ssh ${target.host}: no session in ${timeoutMs} ms`),
    () => conn.end(),
  );
}

/**
 * Run one command on an open connection; `onStdout` sees each piece of stdout as it arrives.
 * Rejects only when the command cannot run or the connection fails meanwhile.
 */
export function execOn(
  conn: SshClient,
  command: string,
  onStdout?: (chunk: string) => void,
): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const onError = (e: Error) => reject(e);
    conn.on('error', onError);
    conn.exec(command, (err, stream) => {
      if (err) {
        conn.off('error', onError);
        return reject(err);
      }
      let stdout = '';
      let stderr = '';
      stream.on('data', (d: Buffer) => {
        const chunk = d.toString();
        stdout += chunk;
        onStdout?.(chunk);
      });
      stream.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      stream.on('close', (code: number | undefined) => {
        conn.off('error', onError);
        resolve({ code: code ?? -1, stdout, stderr });
      });
    });
  });
}

/** The command's stdout; a non-zero exit is an error carrying its stderr. */
export function stdoutOf(host: string, command: string, r: ExecResult): string {
  if (r.code === 0) return r.stdout;
  throw new Error(`ssh ${host} '${command}' exited ${r.code}: ${r.stderr}`);
}

/** One command on a connection of its own (`timeoutMs` covers connecting and running). */
export function sshRun(
  target: SshTarget,
  command: string,
  options: { timeoutMs?: number; readyTimeoutMs?: number; onStdout?: (chunk: string) => void } = {},
): Promise<ExecResult> {
  const timeoutMs = options.timeoutMs ?? 20_000;
  let conn: SshClient | undefined;
  const ran = (async () => {
    conn = await sshConnect(target, Math.min(options.readyTimeoutMs ?? timeoutMs, timeoutMs));
    try {
      return await execOn(conn, command, options.onStdout);
    } finally {
      conn.end();
    }
  })();
  return withTimeout(
    ran,
    timeoutMs,
    () => new Error(`ssh ${target.host} '${command}' timed out after ${timeoutMs} ms`),
    () => conn?.end(),
  );
}

/** One command over SSH: its stdout; rejects on a non-zero exit. */
export async function sshOutput(
  target: SshTarget,
  command: string,
  timeoutMs = 20_000,
): Promise<string> {
  return stdoutOf(target.host, command, await sshRun(target, command, { timeoutMs }));
}

/** Run one command over SSH (ssh2) and return its stdout; rejects on a non-zero exit. */
export function sshExec(
  host: string,
  privateKey: string,
  command: string,
  timeoutMs = 20_000,
): Promise<string> {
  return sshOutput({ host, privateKey }, command, timeoutMs);
}

/** Retry until SSH answers (the guest is booting); returns the command's output. */
export async function waitForSsh(
  host: string,
  privateKey: string,
  command = 'true',
  timeoutMs = 120_000,
) {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      return await sshExec(host, privateKey, command, 10_000);
    } catch (e) {
      last = e;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  throw new Error(`SSH to ${host} not ready in ${timeoutMs} ms: ${(last as Error)?.message}`);
}

/** A line of output and the wall-clock time (epoch ms, host clock) it arrived at. */
export interface TimedLine {
  at: number;
  text: string;
}

/**
 * Run one command over SSH and timestamp each stdout line as it arrives on the host (the
 * guest's clock plays no part): for measuring when something first happened inside a guest.
 * Resolves with the exit code (a non-zero one included) and the lines; rejects on timeout.
 * `onLine` sees every line at once (e.g. to react to the first success).
 */
export async function sshExecTimed(
  host: string,
  privateKey: string,
  command: string,
  options: { timeoutMs?: number; onLine?: (line: TimedLine) => void } = {},
): Promise<{ code: number; lines: TimedLine[]; stderr: string }> {
  const timeoutMs = options.timeoutMs ?? 60_000;
  const now = () => performance.timeOrigin + performance.now();
  const lines: TimedLine[] = [];
  let partial = '';
  const r = await sshRun({ host, privateKey }, command, {
    timeoutMs,
    readyTimeoutMs: 20_000,
    onStdout: (chunk) => {
      const at = now();
      partial += chunk;
      let i: number;
      while ((i = partial.indexOf('\n')) >= 0) {
        const line = { at, text: partial.slice(0, i) };
        partial = partial.slice(i + 1);
        lines.push(line);
        options.onLine?.(line);
      }
    },
  });
  if (partial) lines.push({ at: now(), text: partial });
  return { code: r.code, lines, stderr: r.stderr };
}
