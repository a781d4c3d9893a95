import { NetworkValidationError } from '@minicloud/domain';
import { chmod, mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HostCommandError, type CommandRunner, type RunResult } from '@minicloud/host';
import {
  dnsmasqPaths,
  LinuxNetworkDriver,
  NetworkDriverError,
  renderDnsmasqArgs,
  type BridgeNetworkSpec,
} from '@minicloud/network';

/** A scripted CommandRunner: records every call; `respond` decides each result. */
function fakeRunner(
  respond: (cmd: string, args: readonly string[], input?: string) => Partial<RunResult> | Error,
) {
  const calls: { cmd: string; args: string[]; input?: string }[] = [];
  const run: CommandRunner = async (cmd, args, options = {}) => {
    const input = options.input === undefined ? undefined : String(options.input);
    calls.push({ cmd, args: [...args], input });
    const r = respond(cmd, args, input);
    if (r instanceof Error) throw r;
    return { stdout: '', stderr: '', exitCode: 0, ...r };
  };
  return { run, calls, line: () => calls.map((c) => [c.cmd, ...c.args].join(' ')) };
}

const busy = () =>
  new HostCommandError(
    'ip',
    [],
    1,
    'ioctl(TUNSETIFF): Device or resource busy\nCommand failed -:1',
    false,
  );
const noDevice = (name: string) =>
  new HostCommandError('ip', [], 1, `Device "${name}" does not exist.`, false);

function tapJson(over: Record<string, unknown> = {}, data: Record<string, unknown> = {}) {
  return JSON.stringify([
    {
      ifname: 'mct1',
      flags: ['BROADCAST', 'MULTICAST', 'UP'],
      master: 'mcbr0',
      address: 'fe:54:00:00:00:01',
      linkinfo: {
        info_kind: 'tun',
        info_data: { type: 'tap', multi_queue: false, persist: true, ...data },
      },
      ...over,
    },
  ]);
}

describe('LinuxNetworkDriver.ensurePort (scripted host)', () => {
  test('new tap: two commands, tap MAC derived from the guest MAC', async () => {
    const f = fakeRunner(() => ({}));
    const d = new LinuxNetworkDriver({ run: f.run });
    await expect(
      d.ensurePort({ bridge: 'mcbr0', tap: 'mct1', mac: '52:54:00:00:00:01' }),
    ).resolves.toEqual({
      created: true,
      changed: true,
    });
    expect(f.line()).toEqual(['ip -batch -']);
    expect(f.calls[0]!.input).toBe(
      'tuntap add dev mct1 mode tap\nlink set dev mct1 address fe:54:00:00:00:01 master mcbr0 up\n',
    );
  });

  test('multi-queue taps are created as such', async () => {
    const f = fakeRunner(() => ({}));
    await new LinuxNetworkDriver({ run: f.run }).ensurePort({
      bridge: 'mcbr0',
      tap: 'mct1',
      multiQueue: true,
    });
    expect(f.calls[0]!.input).toMatch(/^tuntap add dev mct1 mode tap multi_queue\n/);
  });

  test('existing tap as asked: no change', async () => {
    const f = fakeRunner((cmd, args) => (args[0] === '-batch' ? busy() : { stdout: tapJson() }));
    const d = new LinuxNetworkDriver({ run: f.run });
    await expect(
      d.ensurePort({ bridge: 'mcbr0', tap: 'mct1', mac: '52:54:00:00:00:01' }),
    ).resolves.toEqual({
      created: false,
      changed: false,
    });
    expect(f.line()).toEqual(['ip -batch -', 'ip -j -d link show dev mct1']);
  });

  test.each([
    ['wrong master', { master: 'other0' }],
    ['no master', { master: undefined }],
    ['down', { flags: ['BROADCAST'] }],
    ['other MAC', { address: 'fe:54:00:00:00:99' }],
  ])('existing tap with %s is fixed', async (_what, over) => {
    const f = fakeRunner((cmd, args) =>
      args[0] === '-batch' ? busy() : args[0] === '-j' ? { stdout: tapJson(over) } : {},
    );
    const d = new LinuxNetworkDriver({ run: f.run });
    await expect(
      d.ensurePort({ bridge: 'mcbr0', tap: 'mct1', mac: '52:54:00:00:00:01' }),
    ).resolves.toEqual({
      created: false,
      changed: true,
    });
    expect(f.line()[2]).toBe('ip link set dev mct1 address fe:54:00:00:00:01 master mcbr0 up');
  });

  test('a non-tap link with the name is a conflict', async () => {
    const f = fakeRunner((cmd, args) =>
      args[0] === '-batch' ? busy() : { stdout: tapJson({ linkinfo: { info_kind: 'veth' } }) },
    );
    await expect(
      new LinuxNetworkDriver({ run: f.run }).ensurePort({ bridge: 'mcbr0', tap: 'mct1' }),
    ).rejects.toMatchObject({
      code: 'NetworkLinkConflict',
    });
  });

  test('multi_queue mismatch is a conflict', async () => {
    const f = fakeRunner((cmd, args) =>
      args[0] === '-batch' ? busy() : { stdout: tapJson({}, { multi_queue: true }) },
    );
    await expect(
      new LinuxNetworkDriver({ run: f.run }).ensurePort({ bridge: 'mcbr0', tap: 'mct1' }),
    ).rejects.toBeInstanceOf(NetworkDriverError);
  });

  test('attaching a new tap fails (no bridge): the tap is deleted again', async () => {
    const f = fakeRunner((cmd, args) =>
      args[0] === '-batch'
        ? new HostCommandError(
            'ip',
            [],
            1,
            'Error: argument "mcbr0" is wrong: Device does not exist\nCommand failed -:2',
            false,
          )
        : {},
    );
    await expect(
      new LinuxNetworkDriver({ run: f.run }).ensurePort({ bridge: 'mcbr0', tap: 'mct1' }),
    ).rejects.toMatchObject({
      code: 'NetworkHostError',
    });
    expect(f.line()).toEqual(['ip -batch -', 'ip link del dev mct1']);
  });

  test('validates names before running anything', async () => {
    const f = fakeRunner(() => ({}));
    const d = new LinuxNetworkDriver({ run: f.run });
    await expect(d.ensurePort({ bridge: 'mcbr0', tap: 'MCT1' })).rejects.toBeInstanceOf(
      NetworkValidationError,
    );
    await expect(d.ensurePort({ bridge: 'mc;br0', tap: 'mct1' })).rejects.toBeInstanceOf(
      NetworkValidationError,
    );
    await expect(d.ensurePort({ bridge: 'mcbr0', tap: 'mct1', mac: 'zz' })).rejects.toBeInstanceOf(
      NetworkValidationError,
    );
    expect(f.calls).toEqual([]);
  });
});

describe('LinuxNetworkDriver.removePort (scripted host)', () => {
  test('missing tap: nothing to do', async () => {
    const f = fakeRunner(() => noDevice('mct1'));
    await expect(new LinuxNetworkDriver({ run: f.run }).removePort('mct1')).resolves.toBe(false);
  });
  test('present tap is deleted; a non-tun link is refused', async () => {
    const f = fakeRunner((cmd, args) => (args[0] === '-j' ? { stdout: tapJson() } : {}));
    await expect(new LinuxNetworkDriver({ run: f.run }).removePort('mct1')).resolves.toBe(true);
    expect(f.line()).toEqual(['ip -j -d link show dev mct1', 'ip link del dev mct1']);
    const g = fakeRunner(() => ({ stdout: tapJson({ linkinfo: { info_kind: 'bridge' } }) }));
    await expect(new LinuxNetworkDriver({ run: g.run }).removePort('mct1')).rejects.toMatchObject({
      code: 'NetworkLinkConflict',
    });
  });
});

describe('LinuxNetworkDriver.setReservations (scripted host, fake /proc)', () => {
  let dir: string;
  let spec: BridgeNetworkSpec;
  let procRoot: string;
  const PID = 4242;

  const fakeDnsmasq = async (pid: number) => {
    const paths = dnsmasqPaths(spec.stateDir);
    const args = renderDnsmasqArgs({
      bridge: spec.bridge,
      cidr: spec.cidr,
      gatewayIp: spec.gatewayIp,
      ...paths,
    });
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
      gatewayIp: '10.11.0.1',
      stateDir: join(dir, 'net'),
      uplink: null,
      natTable: 'mc_nat',
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
    await expect(d.setReservations(spec, res(2))).resolves.toEqual({
      changed: true,
      releasedLeases: [],
      dnsmasq: 'reloaded',
    });
    expect(await readFile(dnsmasqPaths(spec.stateDir).hostsFile, 'utf8')).toBe(
      '52:54:00:00:00:02,10.11.0.2\n52:54:00:00:00:03,10.11.0.3\n',
    );
    await expect(d.setReservations(spec, res(2))).resolves.toEqual({
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
      Array.from({ length: 20 }, (_, i) => d.setReservations(spec, res(i + 1))),
    );
    expect(results.every((r) => r.dnsmasq === 'reloaded' || r.dnsmasq === 'unchanged')).toBe(true);
    const text = await readFile(dnsmasqPaths(spec.stateDir).hostsFile, 'utf8');
    expect(text.trim().split('\n')).toHaveLength(20);
    expect(signals.length).toBeLessThanOrEqual(2);
    // A later, smaller set still wins (the caller always passes the full set).
    await d.setReservations(spec, res(1));
    expect(await readFile(dnsmasqPaths(spec.stateDir).hostsFile, 'utf8')).toBe(
      '52:54:00:00:00:02,10.11.0.2\n',
    );
  });

  test('syncReservations loads inside the lock: a row committed during a load is not lost', async () => {
    const d = new LinuxNetworkDriver({
      run: fakeRunner(() => ({})).run,
      procRoot,
      kill: () => undefined,
    });
    const db = res(1);
    let loads = 0;
    const load = async () => {
      loads++;
      const snapshot = [...db];
      await new Promise((r) => setTimeout(r, 20)); // a slow query
      return snapshot;
    };
    const first = d.syncReservations(spec, load);
    await new Promise((r) => setTimeout(r, 5)); // first run is loading now
    db.push(...res(3).slice(1)); // two launches commit their rows...
    const second = d.syncReservations(spec, load); // ...and sync: queued behind the running load
    const third = d.syncReservations(spec, load); // joins the queued run
    expect(third).toBe(second);
    await Promise.all([first, second, third]);
    expect(loads).toBe(2);
    expect(
      (await readFile(dnsmasqPaths(spec.stateDir).hostsFile, 'utf8')).trim().split('\n'),
    ).toHaveLength(3);
  });

  test('syncReservations: 30 concurrent callers share a few loads', async () => {
    const d = new LinuxNetworkDriver({
      run: fakeRunner(() => ({})).run,
      procRoot,
      kill: () => undefined,
    });
    let loads = 0;
    const db: ReturnType<typeof res> = [];
    await Promise.all(
      res(30).map(async (r) => {
        db.push(r);
        await d.syncReservations(spec, async () => {
          loads++;
          return [...db];
        });
      }),
    );
    expect(loads).toBeLessThanOrEqual(2);
    expect(
      (await readFile(dnsmasqPaths(spec.stateDir).hostsFile, 'utf8')).trim().split('\n'),
    ).toHaveLength(30);
  });

  test('a lease blocking a reused address is released with dhcp_release', async () => {
    const paths = dnsmasqPaths(spec.stateDir);
    await writeFile(
      paths.leaseFile,
      '1795791853 52:54:00:00:00:0a 10.11.0.2 old 01:52:54:00:00:00:0a\n',
    );
    const f = fakeRunner(() => ({}));
    const d = new LinuxNetworkDriver({ run: f.run, procRoot, kill: () => undefined });
    await expect(d.setReservations(spec, res(1))).resolves.toEqual({
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
    const r = await d.setReservations(spec, res(1));
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
      d.setReservations(spec, [{ mac: '52:54:00:00:00:02', ip: '10.11.0.1' }]),
    ).rejects.toThrow(/gateway/);
    await expect(
      d.setReservations(spec, [{ mac: '52:54:00:00:00:02', ip: '10.99.0.1' }]),
    ).rejects.toThrow(/not a host address/);
    await expect(readFile(dnsmasqPaths(spec.stateDir).hostsFile, 'utf8')).rejects.toThrow();
  });
});
