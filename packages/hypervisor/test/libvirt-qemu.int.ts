/**
 * LibvirtHypervisor against the real qemu:///system under TCG: a tiny empty qcow2 (nothing
 * bootable: SeaBIOS loops, which is enough for define/start/state/shutdown->forced/destroy/
 * undefine/list), a pre-created tap, the console log under /tmp/minicloud-test-*.
 *
 * Needs: root, libvirtd + virtlogd running, qemu-system-x86, qemu-utils. Everything created
 * carries a random `mth???-` prefix and is removed in afterAll, even after failures.
 */
import { randomUUID } from 'node:crypto';
import { chmod, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { jest } from '@jest/globals';
import { run } from '@minicloud/host';
import { HypervisorError, LibvirtHypervisor, type DomainSpec } from '../src/index.js';

jest.setTimeout(120_000);

const URI = 'qemu:///system';
const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
const rand3 = Array.from(
  { length: 3 },
  () => alphabet[Math.floor(Math.random() * alphabet.length)],
).join('');
const prefix = `mth${rand3}-`;
const tap = `mth${rand3}t0`;
let dir = '';
let disk = '';
let seq = 0;

function spec(overrides: Partial<DomainSpec> = {}): DomainSpec {
  const n = (seq++).toString(16).padStart(4, '0');
  return {
    name: `${prefix}${n}`,
    uuid: randomUUID(),
    virtType: 'qemu',
    vcpus: 1,
    memoryMiB: 128,
    disks: [{ path: disk, format: 'qcow2', target: 'vda', serial: `vol${n}` }],
    nics: [{ tap, mac: `52:54:00:12:${n.slice(0, 2)}:${n.slice(2)}` }],
    consoleLogPath: join(dir, `console-${n}.log`),
    metadata: {
      instanceId: `i-0000000000000${n}`,
      instanceType: 't3.nano',
      imageId: 'ami-0123456789abcdef0',
    },
    ...overrides,
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

async function virshNames(): Promise<string[]> {
  const r = await run('virsh', ['-c', URI, 'list', '--all', '--name']);
  return r.stdout
    .split('\n')
    .map((s) => s.trim())
    .filter((s) => s.startsWith(prefix));
}

describe('LibvirtHypervisor on qemu:///system (TCG)', () => {
  const hv = new LibvirtHypervisor({ uri: URI });

  beforeAll(async () => {
    await run('virsh', ['-c', URI, 'version']).catch((e: Error) => {
      throw new Error(
        `libvirtd is not reachable at ${URI} (start virtlogd -d and libvirtd -d): ${e.message}`,
      );
    });
    dir = await mkdtemp('/tmp/minicloud-test-hv-');
    // qemu runs as libvirt-qemu (DAC): it must be able to traverse the directory. libvirt
    // chowns the disk itself; the console log is written by virtlogd (root).
    await chmod(dir, 0o755);
    disk = join(dir, 'disk.qcow2');
    await run('qemu-img', ['create', '-q', '-f', 'qcow2', disk, '64M']);
    await run('ip', ['tuntap', 'add', 'dev', tap, 'mode', 'tap']);
    await run('ip', ['link', 'set', tap, 'up']);
  });

  afterAll(async () => {
    await hv.close();
    for (const name of await virshNames().catch(() => [])) {
      await run('virsh', ['-c', URI, 'destroy', name]).catch(() => undefined);
      await run('virsh', ['-c', URI, 'undefine', name, '--nvram', '--managed-save']).catch(
        () => undefined,
      );
    }
    await run('ip', ['link', 'del', tap]).catch(() => undefined);
    if (dir) await rm(dir, { recursive: true, force: true });
    expect(await virshNames()).toEqual([]);
  });

  it('runs the whole lifecycle on a real domain', async () => {
    const s = spec();
    expect(await hv.getState(s.name)).toBeNull();
    expect(await hv.ensureRunning(s)).toEqual({ defined: 'defined', started: true });
    expect(await hv.getState(s.name)).toBe('running');
    expect(await hv.ensureRunning(s)).toEqual({ defined: 'unchanged', started: false });
    expect((await stat(s.consoleLogPath)).isFile()).toBe(true);

    const listed = await hv.listDomains(prefix);
    expect(listed).toContainEqual({
      name: s.name,
      state: 'running',
      instanceId: s.metadata.instanceId,
    });

    expect(await hv.ensureDefined({ ...s, memoryMiB: 192 })).toBe('differs-while-active');

    await hv.reboot(s.name); // ACPI request: accepted even though nothing in the guest reacts
    await hv.reboot(s.name, { hard: true });
    expect(await hv.getState(s.name)).toBe('running');

    // SeaBIOS ignores ACPI power-off: the timeout forces it off.
    const t0 = performance.now();
    expect(await hv.shutdown(s.name, { timeoutMs: 1_500, pollMs: 100, resendMs: 500 })).toBe(
      'forced',
    );
    expect(performance.now() - t0).toBeGreaterThanOrEqual(1_400);
    expect(await hv.getState(s.name)).toBe('shutoff');
    expect(await hv.shutdown(s.name, { timeoutMs: 1_000 })).toBe('already-off');
    await expect(hv.reboot(s.name)).rejects.toMatchObject({ code: 'DomainNotRunning' });

    expect(await hv.ensureDefined({ ...s, memoryMiB: 192 })).toBe('redefined');
    await hv.start(s.name);
    await hv.start(s.name);
    await hv.destroy(s.name);
    await hv.destroy(s.name);
    expect(await hv.getState(s.name)).toBe('shutoff');
    await hv.start(s.name);
    await hv.undefine(s.name);
    expect(await hv.getState(s.name)).toBeNull();
    await hv.undefine(s.name);
    await expect(hv.start(s.name)).rejects.toBeInstanceOf(HypervisorError);
    await expect(hv.reboot(s.name)).rejects.toMatchObject({ code: 'DomainNotFound' });
  });

  it('appends the console log across boots', async () => {
    const s = spec();
    await writeFile(s.consoleLogPath, 'previous boot\n');
    await hv.ensureRunning(s);
    await hv.destroy(s.name);
    await hv.start(s.name);
    await hv.undefine(s.name);
    const { readFile } = await import('node:fs/promises');
    expect((await readFile(s.consoleLogPath, 'utf8')).startsWith('previous boot\n')).toBe(true);
  });

  it('reconnects when the connection was lost', async () => {
    const s = spec();
    await hv.ensureDefined(s);
    // Simulate libvirtd dropping us: close the binding's connection behind the driver's back.
    const inner = (hv as unknown as { conn: { native: { connectClose(): Promise<void> } } | null })
      .conn?.native;
    expect(inner).toBeTruthy();
    await inner!.connectClose();
    expect(await hv.getState(s.name)).toBe('shutoff');
    await hv.undefine(s.name);
  });

  it('measures ensureRunning (define + start) against virsh create of the same XML', async () => {
    const { buildDomainXml } = await import('../src/index.js');
    const rounds = 7;
    const ours: number[] = [];
    const defineOnly: number[] = [];
    const virsh: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const a = spec();
      let t = performance.now();
      await hv.ensureRunning(a);
      ours.push(performance.now() - t);
      await hv.undefine(a.name);

      const c = spec();
      t = performance.now();
      await hv.ensureDefined(c);
      defineOnly.push(performance.now() - t);
      await hv.undefine(c.name);

      const b = spec();
      const xmlPath = join(dir, `${b.name}.xml`);
      await writeFile(xmlPath, buildDomainXml(b));
      t = performance.now();
      await run('virsh', ['-c', URI, 'create', xmlPath]);
      virsh.push(performance.now() - t);
      await run('virsh', ['-c', URI, 'destroy', b.name]);
    }
    const fmt = (xs: number[]) =>
      `p50 ${median(xs).toFixed(0)} ms [${xs.map((x) => x.toFixed(0)).join(', ')}]`;
    console.log(
      `qemu:///system TCG: ensureRunning ${fmt(ours)}; of which ensureDefined alone ${fmt(defineOnly)}; ` +
        `virsh create ${fmt(virsh)}`,
    );
    expect(await virshNames()).toEqual([]);
  });
});
