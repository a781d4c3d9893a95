/**
 * The files under deploy/: every systemd unit starts a role the server has (or is marked as a
 * future role the server does not have yet), carries the settings file, restart policy and
 * ordering a service needs, and passes `systemd-analyze verify` where systemd is installed;
 * the example settings file holds only real settings, and they load.
 */
import { access, copyFile, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { commandExists, run } from '@minicloud/host';
import { loadConfig, SETTING_NAMES } from '@minicloud/config';
import { ROLES } from '../src/roles.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const unitsDir = join(root, 'deploy/systemd');

type Unit = Map<string, Map<string, string[]>>;

/** systemd's ini dialect: [Section], Key=value (repeatable), # and ; comments. */
function parseUnit(text: string): Unit {
  const unit: Unit = new Map();
  let section: Map<string, string[]> | null = null;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(\w+)\]$/.exec(line);
    if (header) {
      section = new Map();
      unit.set(header[1]!, section);
      continue;
    }
    const kv = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (!kv || !section) throw new Error(`cannot parse unit line ${JSON.stringify(raw)}`);
    section.set(kv[1]!, [...(section.get(kv[1]!) ?? []), kv[2]!]);
  }
  return unit;
}

const get = (u: Unit, section: string, key: string) => u.get(section)?.get(key) ?? [];

async function units(): Promise<{ name: string; text: string; unit: Unit }[]> {
  const names = (await readdir(unitsDir)).filter((n) => n.endsWith('.service')).sort();
  return Promise.all(
    names.map(async (name) => {
      const text = await readFile(join(unitsDir, name), 'utf8');
      return { name, text, unit: parseUnit(text) };
    }),
  );
}

describe('deploy/systemd units', () => {
  it('has the all-in-one, API, worker and agent-template units', async () => {
    expect((await units()).map((u) => u.name)).toEqual([
      'minicloud-agent@.service',
      'minicloud-api.service',
      'minicloud-worker.service',
      'minicloud.service',
    ]);
  });

  it('starts the server entry point with a role it has', async () => {
    for (const { name, text, unit } of await units()) {
      const [execStart, ...more] = get(unit, 'Service', 'ExecStart');
      expect(more).toEqual([]);
      const argv = execStart!.split(/\s+/);
      expect(argv.slice(0, 5)).toEqual([
        '/usr/bin/node',
        '--import',
        'tsx',
        'apps/server/src/main.ts',
        'serve',
      ]);
      const [workDir] = get(unit, 'Service', 'WorkingDirectory');
      expect(workDir).toBe('/opt/minicloud');
      await access(join(root, argv[3]!)); // the script exists in the repository
      const role = argv[argv.indexOf('--role') + 1];
      if (/minicloud: future role/.test(text)) {
        // When the role lands, drop the marker so that this test checks the unit for real.
        expect(ROLES).not.toContain(role);
      } else {
        expect({ name, role, known: (ROLES as readonly string[]).includes(role!) }).toEqual({
          name,
          role,
          known: true,
        });
      }
    }
  });

  it('reads the settings file, restarts on failure, raises the file limit', async () => {
    for (const { unit } of await units()) {
      expect(get(unit, 'Service', 'EnvironmentFile')[0]).toBe('/etc/minicloud/minicloud.env');
      expect(get(unit, 'Service', 'Restart')).toEqual(['on-failure']);
      expect(Number(get(unit, 'Service', 'LimitNOFILE')[0])).toBeGreaterThanOrEqual(65536);
      expect(get(unit, 'Service', 'NoNewPrivileges')).toEqual(['yes']);
      expect(get(unit, 'Install', 'WantedBy')).toEqual(['multi-user.target']);
    }
  });

  it('orders each service after what it talks to', async () => {
    for (const { name, text, unit } of await units()) {
      const after = get(unit, 'Unit', 'After').join(' ').split(/\s+/);
      const wants = get(unit, 'Unit', 'Wants').join(' ').split(/\s+/);
      const role = /--role (\w+)/.exec(text)![1];
      expect({ name, network: after.includes('network-online.target') }).toEqual({
        name,
        network: true,
      });
      if (role !== 'agent') {
        expect(after).toEqual(
          expect.arrayContaining(['redis-server.service', 'postgresql.service']),
        );
      }
      if (role !== 'api') {
        expect(after).toEqual(expect.arrayContaining(['libvirtd.service', 'virtlogd.service']));
        expect(wants).toEqual(expect.arrayContaining(['libvirtd.service', 'virtlogd.service']));
        // dnsmasq (guest DHCP) is a child of the worker and must outlive its restarts.
        expect(get(unit, 'Service', 'KillMode')).toEqual(['process']);
      }
    }
  });

  it('passes systemd-analyze verify', async () => {
    if (!(await commandExists('systemd-analyze'))) {
      process.stdout.write('systemd-analyze not installed: verify skipped\n');
      return;
    }
    const dir = await mkdtemp(join(tmpdir(), 'minicloud-test-units-'));
    try {
      const names: string[] = [];
      for (const { name } of await units()) {
        // A template is verified through an instance of it.
        const as = name.replace('@.service', '@host1.service');
        await copyFile(join(unitsDir, name), join(dir, as));
        names.push(join(dir, as));
      }
      const r = await run('systemd-analyze', ['verify', ...names], {
        okExitCodes: [1],
        timeoutMs: 30_000,
      });
      expect({ exitCode: r.exitCode, stderr: r.stderr.trim() }).toEqual({
        exitCode: 0,
        stderr: '',
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('deploy/minicloud.env', () => {
  it('holds only real settings, and they load', async () => {
    const text = await readFile(join(root, 'deploy/minicloud.env'), 'utf8');
    const env = Object.fromEntries(
      text
        .split('\n')
        .filter((l) => /^[A-Z_]+=/.test(l))
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    );
    expect(Object.keys(env).length).toBeGreaterThan(5);
    expect(Object.keys(env).filter((k) => !SETTING_NAMES.includes(k))).toEqual([]);
    const config = loadConfig(env);
    expect(config.redisUrl).toBe('redis://:CHANGE-ME@127.0.0.1:6379');
    expect(config.libvirtTimeoutMs).toBe(30_000);
  });
});
