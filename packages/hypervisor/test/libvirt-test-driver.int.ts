/**
 * LibvirtHypervisor against libvirt's test:///default driver: a real libvirt connection with a
 * simulated hypervisor (no guest runs), so every lifecycle path is checked in milliseconds.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { HypervisorError, LibvirtHypervisor, type DomainSpec } from '../src/index.js';
import { sampleSpec } from './fixtures.js';
import { jest } from '@jest/globals';

jest.setTimeout(60_000);

const prefix = `mth${randomBytes(8)
  .toString('hex')
  .replace(/[^a-z0-9]/g, '')
  .slice(0, 3)}-`;
let seq = 0;

function spec(overrides: Partial<DomainSpec> = {}): DomainSpec {
  const n = (seq++).toString(16).padStart(4, '0');
  return sampleSpec({
    name: `${prefix}${n}`,
    uuid: randomUUID(),
    virtType: 'test',
    consoleLogPath: `/tmp/minicloud-test-nonexistent/${n}.log`,
    metadata: {
      instanceId: `i-0000000000000${n}`,
      instanceType: 't3.micro',
      imageId: 'ami-0123456789abcdef0',
    },
    ...overrides,
  });
}

async function expectCode(p: Promise<unknown>, code: string): Promise<void> {
  await expect(p).rejects.toBeInstanceOf(HypervisorError);
  await p.catch((e: HypervisorError) => expect(e.code).toBe(code));
}

describe('LibvirtHypervisor on test:///default', () => {
  const hv = new LibvirtHypervisor({ uri: 'test:///default' });

  afterAll(async () => {
    for (const d of await hv.listDomains(prefix)) await hv.undefine(d.name);
    expect(await hv.listDomains(prefix)).toEqual([]);
    await hv.close();
  });

  it('defines idempotently and reports the state', async () => {
    const s = spec();
    expect(await hv.getState(s.name)).toBeNull();
    expect(await hv.ensureDefined(s)).toBe('defined');
    expect(await hv.ensureDefined(s)).toBe('unchanged');
    expect(await hv.getState(s.name)).toBe('shutoff');
  });

  it('starts idempotently, and leaves a running domain with another config alone', async () => {
    const s = spec();
    expect(await hv.ensureRunning(s)).toEqual({ defined: 'defined', started: true });
    expect(await hv.ensureRunning(s)).toEqual({ defined: 'unchanged', started: false });
    await hv.start(s.name);
    expect(await hv.getState(s.name)).toBe('running');
    expect(await hv.ensureDefined({ ...s, memoryMiB: 1024 })).toBe('differs-while-active');
  });

  it('redefines a shut-off domain whose config changed', async () => {
    const s = spec();
    await hv.ensureRunning(s);
    expect(await hv.shutdown(s.name, { timeoutMs: 2_000 })).toBe('graceful');
    expect(await hv.shutdown(s.name, { timeoutMs: 2_000 })).toBe('already-off');
    expect(await hv.getState(s.name)).toBe('shutoff');
    expect(await hv.ensureDefined({ ...s, memoryMiB: 1024 })).toBe('redefined');
    expect(await hv.ensureDefined({ ...s, memoryMiB: 1024 })).toBe('unchanged');
  });

  it('refuses a name that belongs to a domain with another uuid', async () => {
    const s = spec();
    await hv.ensureDefined(s);
    await expectCode(hv.ensureDefined({ ...s, uuid: randomUUID() }), 'DomainNameConflict');
  });

  it('destroys, reboots and undefines idempotently', async () => {
    const s = spec();
    await hv.ensureRunning(s);
    await hv.reboot(s.name);
    expect(await hv.getState(s.name)).toBe('running');
    await hv.destroy(s.name);
    await hv.destroy(s.name);
    expect(await hv.getState(s.name)).toBe('shutoff');
    await expectCode(hv.reboot(s.name), 'DomainNotRunning');
    await hv.start(s.name);
    await hv.undefine(s.name); // running: destroyed first
    expect(await hv.getState(s.name)).toBeNull();
    await hv.undefine(s.name);
    await hv.destroy(s.name);
    expect(await hv.shutdown(s.name, { timeoutMs: 100 })).toBe('already-off');
  });

  it('reports missing domains with DomainNotFound', async () => {
    await expectCode(hv.start(`${prefix}missing`), 'DomainNotFound');
    await expectCode(hv.reboot(`${prefix}missing`), 'DomainNotFound');
  });

  it('rejects an invalid spec before it reaches libvirt', async () => {
    await expectCode(hv.ensureDefined(spec({ name: "x'><evil/>" })), 'InvalidDomainSpec');
  });

  it('lists only domains with the prefix, with their instance ids', async () => {
    const other = new LibvirtHypervisor({ uri: 'test:///default' });
    const all = await other.listDomains('');
    expect(all.some((d) => d.name === 'test')).toBe(true); // the test driver's built-in domain
    const ours = await hv.listDomains(prefix);
    expect(ours.length).toBeGreaterThan(0);
    for (const d of ours) {
      expect(d.name.startsWith(prefix)).toBe(true);
      expect(d.instanceId).toMatch(/^i-[0-9a-f]{17}$/);
      expect(['running', 'shutoff']).toContain(d.state);
    }
    expect(all.find((d) => d.name === 'test')?.instanceId).toBeNull();
    await other.close();
  });

  it('reopens the connection after close()', async () => {
    const s = spec();
    await hv.ensureDefined(s);
    await hv.close();
    expect(await hv.getState(s.name)).toBe('shutoff');
  });

  it('handles a few hundred domains quickly (control-plane scale)', async () => {
    const n = 200;
    const specs = Array.from({ length: n }, () => spec());
    const t0 = performance.now();
    for (const s of specs) await hv.ensureRunning(s);
    const t1 = performance.now();
    const listed = await hv.listDomains(prefix);
    const t2 = performance.now();
    for (const s of specs) await hv.undefine(s.name);
    const t3 = performance.now();
    expect(listed.length).toBeGreaterThanOrEqual(n);
    console.log(
      `test driver: ${n} x ensureRunning ${(t1 - t0).toFixed(0)} ms, listDomains(${listed.length}) ` +
        `${(t2 - t1).toFixed(0)} ms, ${n} x undefine ${(t3 - t2).toFixed(0)} ms`,
    );
  });
});
