import { MAX_USER_DATA_BYTES } from '@minicloud/domain';
import { ConfigError, loadConfig } from '../src/index.js';

describe('settings', () => {
  it('has the documented defaults', () => {
    const c = loadConfig({});
    expect(c.listenHost).toBe('127.0.0.1');
    expect(c.listenPort).toBe(8080);
    expect(c.dataDir).toBe('/var/lib/minicloud');
    expect(c.databaseUrl).toBe('file:/var/lib/minicloud/minicloud.db');
    expect(c.paths.adminKeyFile).toBe('/var/lib/minicloud/admin-key');
    expect(c.prefix).toBe('mc');
    expect(c.virtType).toBe('auto');
    expect(c.libvirtTimeoutMs).toBe(30_000);
    expect(c.libvirtMaxCalls).toBe(2);
    expect(c.reconcileTimeoutMs).toBe(300_000);
  });

  it('reads the libvirt and reconcile deadlines, and refuses nonsense', () => {
    const c = loadConfig({
      MINICLOUD_LIBVIRT_TIMEOUT_SECONDS: '45',
      MINICLOUD_LIBVIRT_MAX_CALLS: '6',
      MINICLOUD_RECONCILE_TIMEOUT_SECONDS: '600',
    });
    expect([c.libvirtTimeoutMs, c.libvirtMaxCalls, c.reconcileTimeoutMs]).toEqual([
      45_000, 6, 600_000,
    ]);
    expect(() =>
      loadConfig({ MINICLOUD_LIBVIRT_TIMEOUT_SECONDS: '0', MINICLOUD_LIBVIRT_MAX_CALLS: 'x' }),
    ).toThrow(
      /MINICLOUD_LIBVIRT_TIMEOUT_SECONDS[\s\S]*MINICLOUD_LIBVIRT_MAX_CALLS|MINICLOUD_LIBVIRT_MAX_CALLS[\s\S]*MINICLOUD_LIBVIRT_TIMEOUT_SECONDS/,
    );
  });

  it('reads overrides and ignores unrelated variables', () => {
    const c = loadConfig({
      MINICLOUD_LISTEN: '0.0.0.0:9000',
      MINICLOUD_DATA_DIR: '/srv/mc/',
      PATH: '/bin',
    });
    expect(c.listenHost).toBe('0.0.0.0');
    expect(c.listenPort).toBe(9000);
    expect(c.dataDir).toBe('/srv/mc');
  });

  it("reads Redis' password file: optional at the default path, required when named", () => {
    expect(loadConfig({}).redisPasswordFile).toEqual({
      path: '/var/lib/minicloud-redis/password',
      required: false,
    });
    expect(
      loadConfig({ MINICLOUD_REDIS_PASSWORD_FILE: '/etc/minicloud/redis-password' })
        .redisPasswordFile,
    ).toEqual({ path: '/etc/minicloud/redis-password', required: true });
    expect(() => loadConfig({ MINICLOUD_REDIS_PASSWORD_FILE: 'relative' })).toThrow(ConfigError);
  });

  it('reports every bad key at once', () => {
    try {
      loadConfig({
        MINICLOUD_LISTEN: 'nope',
        MINICLOUD_PREFIX: 'BAD-PREFIX',
        MINICLOUD_DATA_DIR: 'relative',
      });
      throw new Error('expected ConfigError');
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      const keys = (e as ConfigError).problems.map((p) => p.split(':')[0]).sort();
      expect(keys).toEqual(['MINICLOUD_DATA_DIR', 'MINICLOUD_LISTEN', 'MINICLOUD_PREFIX']);
    }
  });

  it('image import: nothing beyond public addresses by default; the allow-list is checked at start', () => {
    const d = loadConfig({}).imageImport;
    expect(d).toEqual({
      allow: { hosts: [], blocks: [] },
      maxBytes: 64 * 1024 ** 3,
      connectTimeoutMs: 10_000,
      idleTimeoutMs: 30_000,
      totalTimeoutMs: 240 * 60_000,
    });
    const c = loadConfig({
      MINICLOUD_IMAGE_IMPORT_ALLOW: 'images.lan,10.0.0.0/8',
      MINICLOUD_IMAGE_MAX_GIB: '2',
      MINICLOUD_IMAGE_IMPORT_IDLE_TIMEOUT_SECONDS: '5',
    }).imageImport;
    expect(c.allow.hosts).toEqual(['images.lan']);
    expect(c.allow.blocks.map((b) => b.text)).toEqual(['10.0.0.0/8']);
    expect(c.maxBytes).toBe(2 * 1024 ** 3);
    expect(c.idleTimeoutMs).toBe(5000);
    try {
      loadConfig({
        MINICLOUD_IMAGE_IMPORT_ALLOW: 'images.lan,10.0.0.1/8,0.0.0.0/0,bad host',
        MINICLOUD_IMAGE_IMPORT_IDLE_TIMEOUT_SECONDS: '0',
      });
      throw new Error('expected ConfigError');
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      expect((e as ConfigError).problems).toEqual([
        expect.stringMatching(/^MINICLOUD_IMAGE_IMPORT_ALLOW: "10.0.0.1\/8" is not a CIDR/),
        expect.stringMatching(/^MINICLOUD_IMAGE_IMPORT_ALLOW: 0.0.0.0\/0 is too broad/),
        expect.stringMatching(/^MINICLOUD_IMAGE_IMPORT_ALLOW: "bad host" is neither/),
        expect.stringMatching(/^MINICLOUD_IMAGE_IMPORT_IDLE_TIMEOUT_SECONDS: /),
      ]);
    }
  });

  it('lets the user-data limit be lowered, never raised above the one the seed builder keeps', () => {
    expect(loadConfig({}).maxUserDataBytes).toBe(MAX_USER_DATA_BYTES);
    expect(loadConfig({ MINICLOUD_MAX_USER_DATA_BYTES: '4096' }).maxUserDataBytes).toBe(4096);
    expect(() =>
      loadConfig({ MINICLOUD_MAX_USER_DATA_BYTES: String(MAX_USER_DATA_BYTES + 1) }),
    ).toThrow(/MINICLOUD_MAX_USER_DATA_BYTES: at most 16384/);
  });

  it('takes a SQLite file: or a PostgreSQL URL as the database and refuses others', () => {
    const pg = 'postgresql://minicloud:pw@127.0.0.1:5432/minicloud';
    expect(loadConfig({ MINICLOUD_DATABASE_URL: pg }).databaseUrl).toBe(pg);
    expect(loadConfig({ MINICLOUD_DATABASE_URL: 'file:/srv/mc.db' }).databaseUrl).toBe(
      'file:/srv/mc.db',
    );
    expect(() => loadConfig({ MINICLOUD_DATABASE_URL: 'mysql://db/minicloud' })).toThrow(
      ConfigError,
    );
  });
});
