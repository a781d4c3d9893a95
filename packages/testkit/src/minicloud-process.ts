import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { MinicloudClient } from '@minicloud/client';
import { run, removePath } from '@minicloud/host';
import { REDIS_URL, testPrefix } from './api-harness.js';
import type { FakeInternet } from './fake-internet.js';
import { addressesOf } from './host-probes.js';
import { REPO_ROOT } from './paths.js';
import { createPostgresTestDatabase, testDatabaseKind } from './postgres.js';

export function testImagePath(): string {
  const path = process.env.MINICLOUD_TEST_IMAGE;
  if (!path) {
    throw new Error(
      'MINICLOUD_TEST_IMAGE is not set: run the tests through scripts/test.sh, which builds the test image',
    );
  }
  return path;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

export interface MinicloudUnderTest {
  prefix: string;
  dataDir: string;
  baseUrl: string;
  client: MinicloudClient;
  env: Record<string, string>;
  logs: () => string;
  /** Start (another) process of this installation with a role: all, api or worker. */
  spawnRole: (role: 'all' | 'api' | 'worker') => Promise<ChildProcess>;
  kill: (child: ChildProcess, signal?: NodeJS.Signals) => Promise<void>;
  /** Stop every process, tear down the host objects and remove the data directory. */
  destroy: () => Promise<void>;
  processes: ChildProcess[];
}

/**
 * A real minicloud (API + worker processes) on its own data directory, port, name prefix,
 * network and Redis key prefix, so it runs beside anything else on the machine.
 */
export async function startMinicloud(
  options: {
    role?: 'all' | 'split';
    extraEnv?: Record<string, string>;
    /** The name prefix (default: a fresh one); for tests that create host objects first. */
    prefix?: string;
    /** Sees the processes' output as it comes (e.g. to act on a start-up message). */
    onOutput?: (text: string) => void;
  } = {},
) {
  const prefix = options.prefix ?? testPrefix('me');
  const dataDir = await mkdtemp(join(tmpdir(), `minicloud-test-${prefix}-`));
  const port = await freePort();
  const octet = 200 + (randomBytes(1)[0]! % 50);
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: process.env.HOME ?? '/root',
    MINICLOUD_DATA_DIR: dataDir,
    MINICLOUD_PREFIX: prefix,
    MINICLOUD_LISTEN: `127.0.0.1:${port}`,
    MINICLOUD_NETWORK_CIDR: `10.${octet}.${randomBytes(1)[0]}.0/24`,
    MINICLOUD_UPLINK: 'none',
    MINICLOUD_ADMIN_KEY: `test-admin-${randomBytes(12).toString('hex')}`,
    MINICLOUD_REDIS_URL: REDIS_URL,
    MINICLOUD_DEFAULT_IMAGE: testImagePath(),
    MINICLOUD_STOP_TIMEOUT_SECONDS: '30',
    MINICLOUD_RECONCILE_INTERVAL_SECONDS: '3',
    ...options.extraEnv,
  };
  // MINICLOUD_TEST_DATABASE=postgres: this installation gets its own PostgreSQL database.
  const postgres =
    testDatabaseKind() === 'postgres' && !env.MINICLOUD_DATABASE_URL
      ? await createPostgresTestDatabase()
      : null;
  if (postgres) env.MINICLOUD_DATABASE_URL = postgres.url;
  let output = '';
  const processes: ChildProcess[] = [];

  const spawnRole = (role: 'all' | 'api' | 'worker') =>
    new Promise<ChildProcess>((resolve, reject) => {
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', 'apps/server/src/main.ts', 'serve', '--role', role],
        {
          cwd: REPO_ROOT,
          env,
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      processes.push(child);
      const timer = setTimeout(
        () => reject(new Error(`minicloud (${role}) did not start:\n${output}`)),
        60_000,
      );
      const onData = (chunk: Buffer) => {
        output += `[${role}] ${chunk.toString()}`;
        options.onOutput?.(chunk.toString());
        if (chunk.toString().includes('minicloud ready')) {
          clearTimeout(timer);
          resolve(child);
        }
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', (c: Buffer) => (output += `[${role}!] ${c.toString()}`));
      child.on('exit', (code) => {
        if (code !== 0 && code !== null) {
          clearTimeout(timer);
          reject(new Error(`minicloud (${role}) exited with ${code}:\n${output}`));
        }
      });
    });

  const kill = async (child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM') => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    await exited;
  };

  if ((options.role ?? 'all') === 'all') await spawnRole('all');
  else {
    await spawnRole('worker');
    await spawnRole('api');
  }

  const baseUrl = `http://127.0.0.1:${port}`;
  const mc: MinicloudUnderTest = {
    prefix,
    dataDir,
    baseUrl,
    env,
    processes,
    client: new MinicloudClient({ baseUrl, apiKey: env.MINICLOUD_ADMIN_KEY! }),
    logs: () => output,
    spawnRole,
    kill,
    destroy: async () => {
      for (const p of processes) await kill(p);
      await run(process.execPath, ['--import', 'tsx', 'apps/server/src/main.ts', 'teardown'], {
        cwd: REPO_ROOT,
        env,
        timeoutMs: 120_000,
      });
      await removePath(dataDir);
      await postgres?.drop();
    },
  };
  return mc;
}

/** What this installation still has on the host: the "nothing leaked" check. */
export async function hostLeftovers(
  prefix: string,
  dataDir: string,
  options: {
    includeNetwork: boolean;
    /**
     * The uplink the test made (a veth carrying the prefix): not a leftover itself, but every
     * address on it other than `keep` is one (Elastic IPs are /32s there).
     */
    uplink?: { name: string; keep: string[] };
  },
) {
  const domains = (await run('virsh', ['-c', 'qemu:///system', 'list', '--all', '--name'])).stdout
    .split('\n')
    .filter((n) => n.startsWith(`${prefix}-`));
  const links = (
    JSON.parse((await run('ip', ['-j', 'link', 'show'])).stdout) as { ifname: string }[]
  )
    .map((l) => l.ifname)
    .filter(
      (n) =>
        n.startsWith(prefix) &&
        n !== options.uplink?.name &&
        // VPC bridges (<prefix>v<9 hex>) and the old default bridge (<prefix>br...) are network.
        (options.includeNetwork || !/^(br|v[0-9a-f]{9}$)/.test(n.slice(prefix.length))),
    );
  const instanceDirs = await readdir(join(dataDir, 'instances')).catch(() => [] as string[]);
  const result: Record<string, string[]> = { domains, links, instanceDirs };
  if (options.includeNetwork) {
    const tables = (await run('nft', ['list', 'tables'])).stdout
      .split('\n')
      .filter((t) => t.includes(prefix));
    const dnsmasq = (await run('pgrep', ['-a', '-x', 'dnsmasq'], { okExitCodes: [1] })).stdout
      .split('\n')
      .filter((l) => l.includes(`--interface=${prefix}`) || l.includes(`${prefix}br`));
    Object.assign(result, { tables, dnsmasq });
  }
  if (options.uplink) {
    const { name, keep } = options.uplink;
    result.addresses = (await addressesOf(name))
      .filter((a) => !keep.includes(a.split('/')[0]!))
      .map((a) => `${a} on ${name}`);
  }
  return result;
}

/** Stop and tear down a minicloud under test; returns whatever of it is still on the host. */
export async function destroyAndListLeftovers(
  mc: MinicloudUnderTest | undefined,
  options: { uplink?: { name: string; keep: string[] } } = {},
): Promise<string[]> {
  if (!mc) return [];
  await mc.destroy();
  return Object.values(
    await hostLeftovers(mc.prefix, mc.dataDir, { includeNetwork: true, ...options }),
  ).flat();
}

/**
 * The end of an e2e run: minicloud's output when a step failed (or MINICLOUD_TEST_LOG is set)
 * and the timings go to the log; then minicloud and the fake internet (if any) are removed.
 * Returns what is still on the host and what went wrong, for the test to expect both empty.
 */
export async function finishE2e(run: {
  mc: MinicloudUnderTest | undefined;
  inet?: FakeInternet | undefined;
  failed: string | null;
  timings?: Record<string, number>;
}): Promise<{ leftovers: string[]; problems: string[] }> {
  const { mc, inet, failed, timings = {} } = run;
  const problems: string[] = [];
  if (mc && (failed || process.env.MINICLOUD_TEST_LOG))
    console.log(`minicloud output (last 30000 chars):\n${mc.logs().slice(-30_000)}`);
  if (Object.keys(timings).length) console.log(`timings: ${JSON.stringify(timings)}`);
  let leftovers: string[] = [];
  try {
    leftovers = await destroyAndListLeftovers(
      mc,
      inet ? { uplink: { name: inet.uplink, keep: [inet.hostIp] } } : {},
    );
  } catch (e) {
    problems.push(`destroying minicloud: ${String(e)}`);
  }
  try {
    await inet?.remove();
  } catch (e) {
    problems.push(String(e));
  }
  return { leftovers, problems };
}

/**
 * Start `main.ts serve --role ROLE` with exactly `env`, wait for "minicloud ready", run
 * `whileRunning`, stop it with SIGTERM; everything it printed.
 */
export async function serveOnce(
  env: Record<string, string>,
  role: 'all' | 'api' | 'worker',
  whileRunning?: () => Promise<void>,
): Promise<string> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'apps/server/src/main.ts', 'serve', '--role', role],
    { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  const exited = new Promise<number | null>((r) => child.once('exit', r));
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`not ready in 60 s:\n${output}`)), 60_000);
      child.stdout!.on('data', (c: Buffer) => {
        output += c.toString();
        if (output.includes('minicloud ready')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`exited with ${code}:\n${output}`));
      });
    });
    await whileRunning?.();
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  }
  return output;
}
