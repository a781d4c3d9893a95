/**
 * deploy/redis/minicloud.conf on a real redis-server: a private one on a free port under a temp
 * dir (never the shared one), stopped by its PID. It must load, refuse clients without the
 * password, and run with append-only persistence and no eviction.
 */
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { commandExists, startDetached } from '@minicloud/host';

const conf = fileURLToPath(new URL('../../../deploy/redis/minicloud.conf', import.meta.url));

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect(port, '127.0.0.1');
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

describe('deploy/redis/minicloud.conf', () => {
  let dir = '';
  let pid = 0;

  afterAll(async () => {
    if (pid) process.kill(pid, 'SIGKILL');
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('loads, needs the password, persists append-only and never evicts', async () => {
    if (!(await commandExists('redis-server'))) throw new Error('redis-server is not installed');
    dir = await mkdtemp(join(tmpdir(), 'minicloud-test-redis-'));
    const port = await freePort();
    const text = (await readFile(conf, 'utf8')).replace(/^requirepass .*$/m, 'requirepass s3cret');
    await writeFile(join(dir, 'redis.conf'), text, { mode: 0o600 });
    // Our own port and directory (later arguments win over the file), nothing else overridden.
    const log = await open(join(dir, 'redis.log'), 'a');
    pid = startDetached(
      'redis-server',
      [join(dir, 'redis.conf'), '--port', String(port), '--dir', dir, '--daemonize', 'no'],
      log.fd,
    );
    await log.close();
    const alive = () => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    for (let i = 0; !(await accepts(port)); i++) {
      if (i > 200 || !alive()) {
        throw new Error(`redis did not start: ${await readFile(join(dir, 'redis.log'), 'utf8')}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    const anonymous = new Redis({
      port,
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      enableReadyCheck: false,
    });
    anonymous.on('error', () => undefined); // NOAUTH is what this test wants to see
    const client = new Redis({ port, password: 's3cret' });
    try {
      expect(await client.config('GET', 'appendonly')).toEqual(['appendonly', 'yes']);
      expect(await client.config('GET', 'maxmemory-policy')).toEqual([
        'maxmemory-policy',
        'noeviction',
      ]);
      expect(await client.config('GET', 'bind')).toEqual(['bind', '127.0.0.1 -::1']);
      await anonymous.connect().catch(() => undefined);
      await expect(anonymous.get('x')).rejects.toThrow(/NOAUTH/);
    } finally {
      anonymous.disconnect();
      client.disconnect();
    }
  });
});
