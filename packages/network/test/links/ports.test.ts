import { NetworkValidationError } from '@minicloud/domain';
import { HostCommandError } from '@minicloud/host';
import { LinuxNetworkDriver, NetworkDriverError } from '@minicloud/network';
import { failedPortLine } from '../../src/links/port-batch.js';
import { fakeRunner } from '../fake-runner.js';

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

describe('taps of concurrent launches are made together (scripted host)', () => {
  const mac = (n: number) => `52:54:00:00:00:${n.toString(16).padStart(2, '0')}`;
  const port = (n: number) => ({ bridge: 'mcbr0', tap: `mct${n}`, mac: mac(n) });

  test('the first call runs alone; the calls made meanwhile share one ip -batch', async () => {
    const f = fakeRunner(() => ({}));
    const d = new LinuxNetworkDriver({ run: f.run });
    const results = await Promise.all([1, 2, 3, 4].map((n) => d.ensurePort(port(n))));
    expect(results).toEqual(Array(4).fill({ created: true, changed: true }));
    expect(f.line()).toEqual(['ip -batch -', 'ip -batch -']);
    expect(f.calls[1]!.input!.trim().split('\n')).toEqual([
      'tuntap add dev mct2 mode tap',
      'link set dev mct2 address fe:54:00:00:00:02 master mcbr0 up',
      'tuntap add dev mct3 mode tap',
      'link set dev mct3 address fe:54:00:00:00:03 master mcbr0 up',
      'tuntap add dev mct4 mode tap',
      'link set dev mct4 address fe:54:00:00:00:04 master mcbr0 up',
    ]);
  });

  test('an existing tap in the middle is checked on its own; the rest go into a new batch', async () => {
    let batches = 0;
    const f = fakeRunner((cmd, args) => {
      if (args[0] === '-batch') {
        batches++;
        // batch 2 holds mct2..mct4: mct3 (its line 3) exists already
        return batches === 2
          ? new HostCommandError('ip', [], 1, 'ioctl(TUNSETIFF): busy\nCommand failed -:3', false)
          : {};
      }
      // mct3 is there but detached from its bridge
      return {
        stdout: tapJson({ ifname: 'mct3', address: 'fe:54:00:00:00:03', master: undefined }),
      };
    });
    const d = new LinuxNetworkDriver({ run: f.run });
    const results = await Promise.all([1, 2, 3, 4].map((n) => d.ensurePort(port(n))));
    expect(results).toEqual([
      { created: true, changed: true },
      { created: true, changed: true },
      { created: false, changed: true },
      { created: true, changed: true },
    ]);
    expect(f.line()).toEqual([
      'ip -batch -',
      'ip -batch -',
      'ip -j -d link show dev mct3',
      'ip link set dev mct3 address fe:54:00:00:00:03 master mcbr0 up',
      'ip -batch -',
    ]);
    expect(f.calls.at(-1)!.input).toBe(
      'tuntap add dev mct4 mode tap\nlink set dev mct4 address fe:54:00:00:00:04 master mcbr0 up\n',
    );
  });

  test('a tap that cannot be attached fails alone and is deleted again', async () => {
    let batches = 0;
    const f = fakeRunner((cmd, args) =>
      args[0] === '-batch' && ++batches === 2
        ? new HostCommandError('ip', [], 1, 'Error: no bridge\nCommand failed -:2', false)
        : {},
    );
    const d = new LinuxNetworkDriver({ run: f.run });
    const results = await Promise.allSettled([1, 2, 3].map((n) => d.ensurePort(port(n))));
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((results[1] as PromiseRejectedResult).reason).toMatchObject({
      code: 'NetworkHostError',
    });
    expect(f.line()).toEqual(['ip -batch -', 'ip -batch -', 'ip link del dev mct2', 'ip -batch -']);
  });

  test('failedPortLine: which port and which of its two lines', () => {
    expect(failedPortLine('x\nCommand failed -:1')).toEqual({ port: 0, attach: false });
    expect(failedPortLine('Command failed -:2\n')).toEqual({ port: 0, attach: true });
    expect(failedPortLine('Command failed -:7')).toEqual({ port: 3, attach: false });
    expect(failedPortLine('timed out')).toBeNull();
  });
});
