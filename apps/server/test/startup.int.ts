/**
 * The server as a process (role api, libvirt's test driver, the shared Redis): what a start
 * prints about the admin key, and the permissions it leaves on the data directory.
 */
import { chmod, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '@minicloud/host';
import { REDIS_URL, testPrefix } from '@minicloud/testkit/api-harness';
import { dataDirExposure } from '@minicloud/testkit/data-dir-privacy';
import { freePort, serveOnce } from '@minicloud/testkit/minicloud-process';
import { fileURLToPath } from 'node:url';

const REPO_ROOT = fileURLToPath(new URL('../../..', import.meta.url));
let dataDir: string;
let env: Record<string, string>;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'minicloud-test-startup-'));
  env = {
    PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: process.env.HOME ?? '/root',
    MINICLOUD_DATA_DIR: dataDir,
    MINICLOUD_PREFIX: testPrefix('ms'),
    MINICLOUD_LISTEN: `127.0.0.1:${await freePort()}`,
    MINICLOUD_LIBVIRT_URI: 'test:///default',
    MINICLOUD_VIRT_TYPE: 'test',
    MINICLOUD_UPLINK: 'none',
    MINICLOUD_NETWORK_CIDR: '10.251.7.0/24',
    MINICLOUD_REDIS_URL: REDIS_URL,
  };
});

afterAll(async () => {
  // The queue's keys in Redis (nothing else of this prefix exists on the host).
  await run(process.execPath, ['--import', 'tsx', 'apps/server/src/main.ts', 'teardown'], {
    cwd: REPO_ROOT,
    env,
    timeoutMs: 120_000,
  });
  await rm(dataDir, { recursive: true, force: true });
});

/** Start the API role, wait until it is ready, run `whileRunning`, stop it; its output. */
const startAndStop = (whileRunning?: () => Promise<void>) => serveOnce(env, 'api', whileRunning);

describe('minicloud start-up', () => {
  const keyFile = () => join(dataDir, 'admin-key');

  it('prints a generated admin key once; later starts say only where it is', async () => {
    const first = await startAndStop();
    const key = (await readFile(keyFile(), 'utf8')).trim();
    expect(key).toMatch(/^mck_/);
    expect(first).toContain(key);
    expect(first).toContain(keyFile());

    const second = await startAndStop();
    expect(second).not.toContain(key);
    expect(second).not.toContain(key.slice(4, 20)); // not even a part of it
    expect(second).toContain(keyFile());
    expect(second).toMatch(/admin API key: in \S+admin-key \(sha256:[A-Za-z0-9_-]{12}\)/);

    const fromEnv = 'env-admin-key-0123456789abcdef';
    env.MINICLOUD_ADMIN_KEY = fromEnv;
    try {
      const withEnv = await startAndStop();
      expect(withEnv).not.toContain(fromEnv);
      expect(withEnv).toContain('from MINICLOUD_ADMIN_KEY');
    } finally {
      delete env.MINICLOUD_ADMIN_KEY;
    }
  }, 240_000);

  it('keeps the data directory private, and makes an older, open one private', async () => {
    // As an earlier version left it: everything readable by everyone.
    await chmod(dataDir, 0o755);
    for (const name of ['images', 'instances', 'volumes', 'snapshots'])
      await chmod(join(dataDir, name), 0o755);
    await chmod(join(dataDir, 'minicloud.db'), 0o644);
    expect(await dataDirExposure(dataDir)).not.toEqual([]);

    await startAndStop();
    expect(await dataDirExposure(dataDir)).toEqual([]);
    const mode = async (p: string) => (await stat(join(dataDir, p))).mode & 0o777;
    expect(await mode('.')).toBe(0o711);
    // libvirt's test driver runs no QEMU: nothing for a group to reach.
    for (const dir of ['images', 'instances', 'volumes', 'snapshots'])
      expect([dir, await mode(dir)]).toEqual([dir, 0o700]);
    expect(await mode('minicloud.db')).toBe(0o600);
    expect(await mode('admin-key')).toBe(0o600);
    expect(await mode('networks')).toBe(0o755); // dnsmasq runs as nobody
  }, 120_000);

  it('creates the database 0600, so SQLite gives its -wal and -shm files 0600 too', async () => {
    for (const suffix of ['', '-wal', '-shm'])
      await rm(join(dataDir, `minicloud.db${suffix}`), { force: true });
    await startAndStop(async () => {
      const mode = async (p: string) => (await stat(join(dataDir, p))).mode & 0o777;
      for (const file of ['minicloud.db', 'minicloud.db-wal', 'minicloud.db-shm'])
        expect([file, await mode(file)]).toEqual([file, 0o600]);
      expect(await dataDirExposure(dataDir)).toEqual([]);
    });
  }, 120_000);
});
