import {
  assertHostname,
  assertForeignLinkName,
  bridgeMacFor,
  elasticIpLabel,
  isMac,
  macForInstance,
  NetworkValidationError,
  normalizeMac,
  tapMacFor,
  tapName,
  vpcBridgeKey,
  vpcBridgeName,
  vpcTableName,
} from '../src/index.js';

const ID = 'i-0123456789abcdef0';

describe('macForInstance', () => {
  test('deterministic, QEMU OUI, unicast, differs per id and per attempt', () => {
    const mac = macForInstance(ID);
    expect(mac).toMatch(/^52:54:00(:[0-9a-f]{2}){3}$/);
    expect(macForInstance(ID)).toBe(mac);
    expect(macForInstance('i-0123456789abcdef1')).not.toBe(mac);
    expect(macForInstance(ID, 1)).not.toBe(mac);
    expect(macForInstance(ID, 1)).toBe(macForInstance(ID, 1));
    expect(isMac(mac)).toBe(true);
  });
  test('golden value (changing the derivation would re-MAC every instance)', () => {
    expect(macForInstance(ID)).toBe('52:54:00:57:df:73');
  });
  test.each(['i-0123', 'i-0123456789ABCDEF0', 'vol-0123456789abcdef0', 'i-0123456789abcdef0 ', ''])(
    'rejects id %j',
    (bad) => {
      expect(() => macForInstance(bad)).toThrow(NetworkValidationError);
    },
  );
  test('1000 ids: few collisions (24 bits)', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 1000; i++)
      seen.add(macForInstance(`i-${i.toString(16).padStart(17, '0')}`));
    expect(seen.size).toBeGreaterThan(995);
  });
});

describe('MAC helpers', () => {
  test('normalizeMac', () => {
    expect(normalizeMac('52:54:00:AB:cd:EF')).toBe('52:54:00:ab:cd:ef');
    for (const bad of [
      '52:54:00:ab:cd',
      '52-54-00-ab-cd-ef',
      '01:00:5e:00:00:01',
      'ff:ff:ff:ff:ff:ff',
      '00:00:00:00:00:00',
      '52:54:00:ab:cd:eg',
    ]) {
      expect(() => normalizeMac(bad)).toThrow(NetworkValidationError);
    }
  });
  test('tapMacFor swaps the first octet for fe', () => {
    expect(tapMacFor('52:54:00:ab:cd:ef')).toBe('fe:54:00:ab:cd:ef');
  });
  test('bridgeMacFor: stable, locally administered unicast', () => {
    const m = bridgeMacFor('mcbr0');
    expect(m).toBe(bridgeMacFor('mcbr0'));
    expect(m).not.toBe(bridgeMacFor('mcbr1'));
    expect(m).toMatch(/^02(:[0-9a-f]{2}){5}$/);
  });
});

describe('names', () => {
  test('tap names agree with @minicloud/domain and fit IFNAMSIZ', () => {
    expect(tapName('mc', ID)).toBe('mct012345678');
    expect(tapName('abcde', ID)).toBe('abcdet012345678');
    expect(tapName('abcde', ID).length).toBe(15);
    expect(tapName('mc', ID)).toBe(tapName('mc', ID));
  });
  test.each(['m', 'abcdef', '1ab', 'Ab', 'a-b', 'a_b', ''])('rejects prefix %j', (bad) => {
    expect(() => tapName(bad, ID)).toThrow(NetworkValidationError);
  });
  test('foreign (uplink) names', () => {
    for (const ok of ['eth0', 'enp3s0f1', 'bond0.12', 'br-lan', 'wg_0'])
      expect(assertForeignLinkName(ok)).toBe(ok);
    for (const bad of ['', 'a'.repeat(16), 'eth 0', 'eth0/1', 'eth0"', '.', '..', '-x', 'eth0\n']) {
      expect(() => assertForeignLinkName(bad)).toThrow(NetworkValidationError);
    }
  });
});

describe('VPC names', () => {
  test('vpcBridgeName: prefix + v + 9 hex of the id, at most 15 characters', () => {
    expect(vpcBridgeName('mc', 'vpc-0123456789abcdef0')).toBe('mcv012345678');
    expect(vpcBridgeName('abcde', 'vpc-0123456789abcdef0')).toBe('abcdev012345678');
    expect(vpcBridgeName('abcde', 'vpc-0123456789abcdef0')).toHaveLength(15);
  });
  test.each(['vpc-0123', 'vpc-0123456789ABCDEF0', 'i-0123456789abcdef0', ''])(
    'vpcBridgeName refuses the id %j',
    (id) => {
      expect(() => vpcBridgeName('mc', id)).toThrow(NetworkValidationError);
    },
  );
  test('vpcTableName and elasticIpLabel', () => {
    expect(vpcTableName('mc')).toBe('mc_vpc');
    expect(elasticIpLabel('eth0', 'mc')).toBe('eth0:mc');
    expect(elasticIpLabel('enp3s0f0', 'abcde')).toBe('enp3s0f0:abcde');
    expect(elasticIpLabel('enx00e04c680001', 'mc')).toBeNull(); // does not fit in 15
    expect(() => elasticIpLabel('eth0 x', 'mc')).toThrow(NetworkValidationError);
  });
});

describe('assertHostname', () => {
  test.each(['ip-10-11-0-5', 'i-0123456789abcdef0', 'a', 'web1'])('accepts %s', (name) => {
    expect(assertHostname(name)).toBe(name);
  });
  // Digits only reads as an address (`ping 1234` goes to 0.0.4.210).
  test.each(['1234', '', '-a', 'a-', 'A', 'a.b', 'a_b', 'x'.repeat(64)])('refuses %j', (name) => {
    expect(() => assertHostname(name)).toThrow(/hostname/);
  });
});

describe('vpcBridgeKey', () => {
  test('is the part of the VPC id its bridge is named after', () => {
    expect(vpcBridgeKey('vpc-0123456789abcdef0')).toBe('012345678');
    expect(vpcBridgeName('mc', 'vpc-0123456789abcdef0')).toBe(
      `mcv${vpcBridgeKey('vpc-0123456789abcdef0')}`,
    );
    expect(() => vpcBridgeKey('vpc-../etc')).toThrow();
  });
});
