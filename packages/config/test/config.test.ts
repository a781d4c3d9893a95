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
