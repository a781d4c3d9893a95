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
});
