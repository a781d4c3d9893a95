import {
  BUILT_IN_INSTANCE_TYPES,
  assertNamePrefix,
  domainName,
  instanceIdFromDomainName,
  isId,
  newId,
  tapName,
} from '../src/index.js';

describe('ids', () => {
  it('makes EC2-style ids that are unique and validate', () => {
    const ids = new Set(Array.from({ length: 1000 }, () => newId('instance')));
    expect(ids.size).toBe(1000);
    for (const id of ids) expect(id).toMatch(/^i-[0-9a-f]{17}$/);
    expect(isId('image', newId('image'))).toBe(true);
    expect(isId('image', 'ami-../../etc')).toBe(false);
    expect(isId('instance', 'i-0123456789ABCDEF0')).toBe(false);
  });
});

describe('host names', () => {
  it('derives domain and tap names that fit Linux limits and round-trip', () => {
    const id = 'i-0123456789abcdef0';
    expect(domainName('mc', id)).toBe('mc-i-0123456789abcdef0');
    expect(instanceIdFromDomainName('mc', 'mc-i-0123456789abcdef0')).toBe(id);
    expect(instanceIdFromDomainName('mc', 'other-i-0123456789abcdef0')).toBeNull();
    expect(tapName('abcde', id)).toBe('abcdet012345678');
    expect(tapName('abcde', id).length).toBeLessThanOrEqual(15);
  });

  it('refuses prefixes that could escape names', () => {
    expect(() => assertNamePrefix('mc')).not.toThrow();
    for (const bad of ['', 'm', 'toolong', 'MC', '1mc', 'mc-', 'm/c']) {
      expect(() => assertNamePrefix(bad)).toThrow();
    }
  });
});

describe('instance type catalog', () => {
  it('covers every family with EC2 names and sizes', () => {
    const families = new Set(BUILT_IN_INSTANCE_TYPES.map((t) => t.family));
    expect(families).toEqual(
      new Set([
        'general-purpose',
        'compute-optimized',
        'memory-optimized',
        'storage-optimized',
        'accelerated-computing',
      ]),
    );
    const micro = BUILT_IN_INSTANCE_TYPES.find((t) => t.instanceType === 't3.micro');
    expect(micro).toMatchObject({ vcpus: 2, memoryMiB: 1024 });
    expect(
      BUILT_IN_INSTANCE_TYPES.find((t) => t.instanceType === 'i3.large')?.instanceStorageGiB,
    ).toBe(475);
    expect(BUILT_IN_INSTANCE_TYPES.find((t) => t.instanceType === 'g4dn.xlarge')?.gpus).toBe(1);
  });
});
