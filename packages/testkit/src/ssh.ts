import ssh2 from 'ssh2';

const { Client } = ssh2;

/** Run one command over SSH (ssh2) and return its stdout; rejects on a non-zero exit. */
export function sshExec(
  host: string,
  privateKey: string,
  command: string,
  timeoutMs = 20_000,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const conn = new Client();
    const timer = setTimeout(() => {
      conn.end();
      reject(new Error(`ssh ${host} '${command}' timed out`));
    }, timeoutMs);
    conn
      .on('ready', () => {
        conn.exec(command, (err, stream) => {
          if (err) {
            clearTimeout(timer);
            conn.end();
            return reject(err);
          }
          let out = '';
          let errOut = '';
          stream.on('data', (d: Buffer) => (out += d.toString()));
          stream.stderr.on('data', (d: Buffer) => (errOut += d.toString()));
          stream.on('close', (code: number) => {
            clearTimeout(timer);
            conn.end();
            if (code === 0) resolve(out);
            else reject(new Error(`ssh ${host} '${command}' exited ${code}: ${errOut}`));
          });
        });
      })
      .on('error', (e) => {
        clearTimeout(timer);
        reject(e);
      })
      .connect({
        host,
        port: 22,
        username: 'root',
        privateKey,
        readyTimeout: timeoutMs,
        hostVerifier: () => true,
      });
  });
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
export function sshExecTimed(
  host: string,
  privateKey: string,
  command: string,
  options: { timeoutMs?: number; onLine?: (line: TimedLine) => void } = {},
): Promise<{ code: number; lines: TimedLine[]; stderr: string }> {
  const timeoutMs = options.timeoutMs ?? 60_000;
  const now = () => performance.timeOrigin + performance.now();
  return new Promise((resolve, reject) => {
    const conn = new Client();
    const timer = setTimeout(() => {
      conn.end();
      reject(new Error(`ssh ${host} '${command}' timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    conn
      .on('ready', () => {
        conn.exec(command, (err, stream) => {
          if (err) {
            clearTimeout(timer);
            conn.end();
            return reject(err);
          }
          const lines: TimedLine[] = [];
          let partial = '';
          let stderr = '';
          stream.on('data', (d: Buffer) => {
            const at = now();
            partial += d.toString();
            let i: number;
            while ((i = partial.indexOf('\n')) >= 0) {
              const line = { at, text: partial.slice(0, i) };
              partial = partial.slice(i + 1);
              lines.push(line);
              options.onLine?.(line);
            }
          });
          stream.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
          stream.on('close', (code: number) => {
            clearTimeout(timer);
            conn.end();
            if (partial) lines.push({ at: now(), text: partial });
            resolve({ code: code ?? -1, lines, stderr });
          });
        });
      })
      .on('error', (e) => {
        clearTimeout(timer);
        reject(e);
      })
      .connect({
        host,
        port: 22,
        username: 'root',
        privateKey,
        readyTimeout: Math.min(timeoutMs, 20_000),
        hostVerifier: () => true,
      });
  });
}
