import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { removePath, run } from '@minicloud/host';

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

/**
 * A redis-server of the test's own, on a free loopback port, in a temporary directory, without
 * persistence: stopping it loses every job, as a Redis without AOF would. Stopped and restarted
 * by PID (never the machine's shared Redis). With `password`, it requires a generated one, kept
 * in `passwordFile` (mode 0600) as scripts/setup.sh keeps the real one; `url` carries none.
 */
export async function startOwnRedis(options: { password?: boolean } = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'minicloud-test-redis-'));
  const port = await freePort();
  const password = options.password ? randomBytes(16).toString('hex') : '';
  const passwordFile = join(dir, 'password');
  if (password) await writeFile(passwordFile, `${password}\n`, { mode: 0o600 });
  let child: ChildProcess | null = null;

  const running = () => child !== null && child.exitCode === null && child.signalCode === null;
  /** Start it (again) on the same port and directory; a no-op while it runs. */
  const start = async () => {
    if (running()) return;
    const c = spawn(
      'redis-server',
      [
        ...['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', ''],
        ...(password ? ['--requirepass', password] : []),
      ],
      { stdio: 'ignore' },
    );
    child = c;
    for (let i = 0; i < 100; i++) {
      const { stdout } = await run('redis-cli', ['-p', String(port), 'ping'], {
        okExitCodes: [0, 1],
        env: { ...process.env, REDISCLI_AUTH: password || undefined },
      }).catch(() => ({ stdout: '' }));
      if (stdout.trim() === 'PONG') return;
      if (c.exitCode !== null) throw new Error(`redis-server on port ${port} exited`);
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`redis-server on port ${port} does not answer`);
  };

  /** Stop it by PID (SIGKILL by default: nothing is saved). */
  const stop = async (signal: NodeJS.Signals = 'SIGKILL') => {
    const c = child;
    if (!c || !running()) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill(signal);
    await exited;
    child = null;
  };

  await start();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    passwordFile: password ? passwordFile : undefined,
    pid: () => child?.pid,
    start,
    stop,
    async destroy() {
      await stop();
      await removePath(dir);
    },
  };
}
