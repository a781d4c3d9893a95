import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  detectVirtType,
  HypervisorError,
  isConnectionError,
  isDomainAlreadyRunningError,
  isDomainNotFoundError,
  isDomainNotRunningError,
  mapDomainState,
  toHypervisorError,
} from '../src/index.js';

describe('detectVirtType', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'minicloud-test-detect-'));
    writeFileSync(join(dir, 'kvm'), '');
    writeFileSync(join(dir, 'kvm_pvm'), '');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('picks kvm when the device opens and kvm_pvm is absent', () => {
    const r = detectVirtType({ kvmDevice: join(dir, 'kvm'), pvmMarker: join(dir, 'absent') });
    expect(r.virtType).toBe('kvm');
  });

  it('picks TCG when kvm_pvm is loaded, and says why', () => {
    const r = detectVirtType({ kvmDevice: join(dir, 'kvm'), pvmMarker: join(dir, 'kvm_pvm') });
    expect(r).toEqual({
      virtType: 'qemu',
      reason: expect.stringContaining('kvm_pvm module loaded'),
    });
    expect(r.reason).toContain('TCG');
  });

  it('picks TCG without /dev/kvm', () => {
    const r = detectVirtType({ kvmDevice: join(dir, 'nokvm'), pvmMarker: join(dir, 'absent') });
    expect(r.virtType).toBe('qemu');
    expect(r.reason).toContain('does not exist');
  });

  it('picks TCG when the device cannot be opened read-write', () => {
    const r = detectVirtType({ kvmDevice: dir, pvmMarker: join(dir, 'absent') });
    expect(r.virtType).toBe('qemu');
    expect(r.reason).toContain('cannot be opened');
  });

  it('lets the override win', () => {
    const opts = { kvmDevice: join(dir, 'kvm'), pvmMarker: join(dir, 'kvm_pvm') };
    expect(detectVirtType({ ...opts, override: 'kvm' }).virtType).toBe('kvm');
    expect(detectVirtType({ ...opts, override: 'test' }).virtType).toBe('test');
    expect(detectVirtType({ ...opts, override: 'auto' }).virtType).toBe('qemu');
    expect(() => detectVirtType({ override: 'xen' as 'kvm' })).toThrow(/override/);
  });
});

describe('libvirt error classification', () => {
  it.each([
    ['Domain not found', true],
    ["Domain not found: no domain with matching name 'mc-x'", true],
    [
      "Domain not found: no domain with matching uuid '6695eb01-f6a4-8304-79aa-97f2502e193f' (test)",
      true,
    ],
    ['Requested operation is not valid: domain is not running', false],
  ])('not found: %s -> %s', (m, want) => {
    expect(isDomainNotFoundError(new Error(m))).toBe(want);
  });

  it.each([
    ['Requested operation is not valid: domain is not running', true],
    ["internal error: domain 'test' not running", true],
    ['Domain not found', false],
  ])('not running: %s -> %s', (m, want) => {
    expect(isDomainNotRunningError(new Error(m))).toBe(want);
  });

  it('recognises already-running and connection errors', () => {
    expect(
      isDomainAlreadyRunningError(
        new Error('Requested operation is not valid: domain is already running'),
      ),
    ).toBe(true);
    expect(isConnectionError(new Error('internal error: client socket is closed'))).toBe(true);
    expect(isConnectionError(new Error('Cannot recv data: Connection reset by peer'))).toBe(true);
    expect(isConnectionError(new Error('End of file while reading data: Input/output error'))).toBe(
      true,
    );
    expect(isConnectionError(new Error('Domain not found'))).toBe(false);
  });

  it('maps to stable codes', () => {
    expect(toHypervisorError(new Error('Domain not found'), 'x').code).toBe('DomainNotFound');
    expect(toHypervisorError(new Error('domain is not running'), 'x').code).toBe(
      'DomainNotRunning',
    );
    expect(toHypervisorError(new Error('client socket is closed'), 'x').code).toBe(
      'LibvirtConnectionError',
    );
    expect(toHypervisorError(new Error('boom'), 'x').code).toBe('LibvirtError');
    const e = new HypervisorError('DomainNameConflict', 'x');
    expect(toHypervisorError(e, 'y')).toBe(e);
  });
});

describe('mapDomainState', () => {
  it.each([
    [0, 'other'],
    [1, 'running'],
    [2, 'running'],
    [3, 'paused'],
    [4, 'running'],
    [5, 'shutoff'],
    [6, 'crashed'],
    [7, 'paused'],
    [99, 'other'],
  ])('%i -> %s', (n, s) => expect(mapDomainState(n)).toBe(s));
});
