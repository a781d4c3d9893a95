import { chmod, mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HostCommandError } from '@minicloud/host';
import {
  dnsmasqPaths,
  LinuxNetworkDriver,
  renderVpcDnsmasqArgs,
  type VpcNetworkSpec,
} from '@minicloud/network';
import { fakeRunner } from '../fake-runner.js';

describe('LinuxNetworkDriver.setVpcReservations (scripted host, fake /proc)', () => {
  let dir: string;
  let spec: VpcNetworkSpec;
  let procRoot: string;
  const PID = 4242;

  const fakeDnsmasq = async (pid: number) => {
    const paths = dnsmasqPaths(spec.stateDir);
    const args = renderVpcDnsmasqArgs({ bridge: spec.bridge, subnets: spec.subnets, ...paths });
    await mkdir(join(procRoot, String(pid)), { recursive: true });
    await writeFile(
      join(procRoot, String(pid), 'cmdline'),
      ['/usr/sbin/dnsmasq', ...args].join('\0') + '\0',
    );
    await writeFile(paths.pidFile, `${pid}\n`);
  };

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'minicloud-test-netunit-'));
    await chmod(dir, 0o755); // dnsmasq (nobody) must reach the state dir
    procRoot = join(dir, 'proc');
    spec = {
      bridge: 'mcbr0',
      cidr: '10.11.0.0/24',
      subnets: [{ cidr: '10.11.0.0/24', gatewayIp: '10.11.0.1' }],
      stateDir: join(dir, 'net'),
    };
    await mkdir(spec.stateDir, { recursive: true });
    await fakeDnsmasq(PID);
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const res = (n: number) =>
    Array.from({ length: n }, (_, i) => ({
      mac: `52:54:00:00:00:${(i + 2).toString(16).padStart(2, '0')}`,
      ip: `10.11.0.${i + 2}`,
    }));

  test('writes the file and SIGHUPs once; the same set again is a no-op', async () => {
    const signals: [number, string][] = [];
    const f = fakeRunner(() => ({}));
    const d = new LinuxNetworkDriver({
      run: f.run,
      procRoot,
      kill: (p, s) => void signals.push([p, s]),
    });
    await expect(d.setVpcReservations(spec, res(2))).resolves.toEqual({
      changed: true,
      releasedLeases: [],
      dnsmasq: 'reloaded',
    });
    expect(await readFile(dnsmasqPaths(spec.stateDir).hostsFile, 'utf8')).toBe(
      '52:54:00:00:00:02,10.11.0.2\n52:54:00:00:00:03,10.11.0.3\n',
    );
    await expect(d.setVpcReservations(spec, res(2))).resolves.toEqual({
      changed: false,
      releasedLeases: [],
      dnsmasq: 'unchanged',
    });
    expect(signals).toEqual([[PID, 'SIGHUP']]);
    expect(f.calls).toEqual([]); // no host commands at all on this path
  });

  test('concurrent calls are serialised and coalesced: the last full set wins', async () => {
    const signals: [number, string][] = [];
    const d = new LinuxNetworkDriver({
      run: fakeRunner(() => ({})).run,
      procRoot,
      kill: (p, s) => void signals.push([p, s]),
    });
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => d.setVpcReservations(spec, res(i + 1))),
    );
    expect(results.every((r) => r.dnsmasq === 'reloaded' || r.dnsmasq === 'unchanged')).toBe(true);
    const text = await readFile(dnsmasqPaths(spec.stateDir).hostsFile, 'utf8');
    expect(text.trim().split('\n')).toHaveLength(20);
    expect(signals.length).toBeLessThanOrEqual(2);
    // A later, smaller set still wins (the caller always passes the full set).
    await d.setVpcReservations(spec, res(1));
    expect(await readFile(dnsmasqPaths(spec.stateDir).hostsFile, 'utf8')).toBe(
      '52:54:00:00:00:02,10.11.0.2\n',
    );
  });

  test('a lease blocking a reused address is released with dhcp_release', async () => {
    const paths = dnsmasqPaths(spec.stateDir);
    await writeFile(
      paths.leaseFile,
      '1795791853 52:54:00:00:00:0a 10.11.0.2 old 01:52:54:00:00:00:0a\n',
    );
    const f = fakeRunner(() => ({}));
    const d = new LinuxNetworkDriver({ run: f.run, procRoot, kill: () => undefined });
    await expect(d.setVpcReservations(spec, res(1))).resolves.toEqual({
      changed: true,
      releasedLeases: [{ mac: '52:54:00:00:00:0a', ip: '10.11.0.2' }],
      dnsmasq: 'reloaded',
    });
    expect(f.line()).toEqual(['dhcp_release mcbr0 10.11.0.2 52:54:00:00:00:0a']);
  });

  test('without dhcp_release: dnsmasq is restarted with the lease removed from its file', async () => {
    const paths = dnsmasqPaths(spec.stateDir);
    await writeFile(
      paths.leaseFile,
      '1795791853 52:54:00:00:00:0a 10.11.0.2 old *\n1795791853 52:54:00:00:00:0b 10.11.0.9 other *\n',
    );
    const signals: [number, string][] = [];
    const kill = (pid: number, s: NodeJS.Signals) => {
      signals.push([pid, s]);
      if (s === 'SIGTERM') void writeFile(join(procRoot, String(pid), 'cmdline'), ''); // now a zombie
    };
    const f = fakeRunner((cmd) => {
      if (cmd === 'dhcp_release')
        return new HostCommandError('dhcp_release', [], null, 'ENOENT ', false);
      if (cmd === 'dnsmasq') void fakeDnsmasq(5151);
      return {};
    });
    const d = new LinuxNetworkDriver({ run: f.run, procRoot, kill });
    const r = await d.setVpcReservations(spec, res(1));
    expect(r).toEqual({
      changed: true,
      releasedLeases: [{ mac: '52:54:00:00:00:0a', ip: '10.11.0.2' }],
      dnsmasq: 'restarted',
    });
    expect(signals[0]).toEqual([PID, 'SIGTERM']);
    expect(await readFile(paths.leaseFile, 'utf8')).toBe(
      '1795791853 52:54:00:00:00:0b 10.11.0.9 other *\n',
    );
    expect(f.line()[0]).toBe('dhcp_release mcbr0 10.11.0.2 52:54:00:00:00:0a');
    expect(f.line()[1]).toMatch(/^dnsmasq --conf-file=\/dev\/null /);
  });

  test('invalid reservations are refused before anything is written', async () => {
    const d = new LinuxNetworkDriver({
      run: fakeRunner(() => ({})).run,
      procRoot,
      kill: () => undefined,
    });
    await expect(
      d.setVpcReservations(spec, [{ mac: '52:54:00:00:00:02', ip: '10.11.0.1' }]),
    ).rejects.toThrow(/router address/);
    await expect(
      d.setVpcReservations(spec, [{ mac: '52:54:00:00:00:02', ip: '10.99.0.1' }]),
    ).rejects.toThrow(/not a host address/);
    await expect(readFile(dnsmasqPaths(spec.stateDir).hostsFile, 'utf8')).rejects.toThrow();
  });
});
