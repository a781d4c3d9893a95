import {
  addressAvailability,
  allocateAddress,
  cidrContains,
  cidrContainsCidr,
  cidrsOverlap,
  countAvailable,
  defaultGateway,
  ec2ReservedAddresses,
  firstUsableAddresses,
  intToIp,
  ipToInt,
  isCidr,
  isIpv4,
  NetworkValidationError,
  parseCidr,
} from '../src/index.js';

describe('IPv4 parsing', () => {
  test.each([
    ['0.0.0.0', 0],
    ['10.11.0.1', 0x0a0b0001],
    ['192.168.255.254', 0xc0a8fffe],
    ['255.255.255.255', 0xffffffff],
  ])('ipToInt(%s) = %d and back', (ip, n) => {
    expect(ipToInt(ip)).toBe(n);
    expect(intToIp(n)).toBe(ip);
  });

  test.each([
    '',
    '1.2.3',
    '1.2.3.4.5',
    '256.1.1.1',
    '01.2.3.4',
    '1.2.3.04',
    ' 1.2.3.4',
    '1.2.3.4 ',
    'a.b.c.d',
    '1..2.3',
    '-1.2.3.4',
  ])('rejects %j', (bad) => {
    expect(isIpv4(bad)).toBe(false);
    expect(() => ipToInt(bad)).toThrow(NetworkValidationError);
  });

  test('intToIp rejects out-of-range values', () => {
    expect(() => intToIp(-1)).toThrow(NetworkValidationError);
    expect(() => intToIp(2 ** 32)).toThrow(NetworkValidationError);
    expect(() => intToIp(1.5)).toThrow(NetworkValidationError);
  });
});

describe('parseCidr', () => {
  test('a /24', () => {
    expect(parseCidr('10.11.0.0/24')).toEqual({
      cidr: '10.11.0.0/24',
      network: '10.11.0.0',
      prefixLength: 24,
      netmask: '255.255.255.0',
      broadcast: '10.11.0.255',
      networkInt: 0x0a0b0000,
      broadcastInt: 0x0a0b00ff,
      size: 256,
      firstHost: '10.11.0.1',
      lastHost: '10.11.0.254',
      firstHostInt: 0x0a0b0001,
      lastHostInt: 0x0a0b00fe,
      hostCount: 254,
    });
  });

  test.each([
    ['0.0.0.0/0', '0.0.0.0', '255.255.255.255', 2 ** 32 - 2],
    ['10.0.0.0/8', '255.0.0.0', '10.255.255.255', 2 ** 24 - 2],
    ['172.16.4.0/22', '255.255.252.0', '172.16.7.255', 1022],
    ['10.0.0.16/28', '255.255.255.240', '10.0.0.31', 14],
    ['10.0.0.4/30', '255.255.255.252', '10.0.0.7', 2],
    ['10.0.0.4/31', '255.255.255.254', '10.0.0.5', 2],
    ['10.0.0.4/32', '255.255.255.255', '10.0.0.4', 1],
  ])('%s', (cidr, netmask, broadcast, hosts) => {
    const c = parseCidr(cidr);
    if (cidr === '0.0.0.0/0') expect(c.netmask).toBe('0.0.0.0');
    else expect(c.netmask).toBe(netmask);
    expect(c.broadcast).toBe(broadcast);
    expect(c.hostCount).toBe(hosts);
  });

  test.each([
    '10.0.0.0',
    '10.0.0.0/33',
    '10.0.0.0/-1',
    '10.0.0.0/024',
    '10.0.0/24',
    '10.0.0.0/24/1',
    '',
    'x/24',
    '10.0.0.0 /24',
  ])('rejects malformed %j with reason InvalidCidr', (bad) => {
    try {
      parseCidr(bad);
      throw new Error('no throw');
    } catch (e) {
      expect(e).toBeInstanceOf(NetworkValidationError);
      expect((e as NetworkValidationError).code).toBe('InvalidParameterValue');
      expect((e as NetworkValidationError).reason).toBe('InvalidCidr');
    }
    expect(isCidr(bad)).toBe(false);
  });

  test('host bits: refused by default, normalised on request', () => {
    expect(() => parseCidr('10.0.0.5/24')).toThrow(/host bits.*10\.0\.0\.0\/24/);
    expect(parseCidr('10.0.0.5/24', { allowHostBits: true }).cidr).toBe('10.0.0.0/24');
  });
});

describe('block relations', () => {
  test('cidrContains', () => {
    expect(cidrContains('10.0.0.0/24', '10.0.0.0')).toBe(true);
    expect(cidrContains('10.0.0.0/24', '10.0.0.255')).toBe(true);
    expect(cidrContains('10.0.0.0/24', '10.0.1.0')).toBe(false);
    expect(cidrContains('0.0.0.0/0', '255.255.255.255')).toBe(true);
    expect(() => cidrContains('10.0.0.0/24', '10.0.0')).toThrow(NetworkValidationError);
  });

  test.each([
    ['10.0.0.0/16', '10.0.5.0/24', true],
    ['10.0.0.0/24', '10.0.0.128/25', true],
    ['10.0.0.0/25', '10.0.0.128/25', false],
    ['10.0.0.0/24', '10.0.1.0/24', false],
    ['0.0.0.0/0', '192.168.0.0/16', true],
    ['10.0.0.255/32', '10.0.0.0/24', true],
  ])('cidrsOverlap(%s, %s) = %s (symmetric)', (a, b, expected) => {
    expect(cidrsOverlap(a, b)).toBe(expected);
    expect(cidrsOverlap(b, a)).toBe(expected);
  });

  test('cidrContainsCidr', () => {
    expect(cidrContainsCidr('10.0.0.0/16', '10.0.3.0/24')).toBe(true);
    expect(cidrContainsCidr('10.0.3.0/24', '10.0.0.0/16')).toBe(false);
    expect(cidrContainsCidr('10.0.0.0/16', '10.1.0.0/24')).toBe(false);
  });
});

describe('reserved and usable addresses', () => {
  test('firstUsableAddresses and defaultGateway', () => {
    expect(firstUsableAddresses('10.0.0.0/24', 3)).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.3']);
    expect(firstUsableAddresses('10.0.0.0/30', 5)).toEqual(['10.0.0.1', '10.0.0.2']);
    expect(firstUsableAddresses('10.0.0.0/24', 0)).toEqual([]);
    expect(() => firstUsableAddresses('10.0.0.0/24', -1)).toThrow(NetworkValidationError);
    expect(defaultGateway('10.0.0.0/24')).toBe('10.0.0.1');
    expect(() => defaultGateway('10.0.0.0/31')).toThrow(NetworkValidationError);
  });

  test('ec2ReservedAddresses', () => {
    expect(ec2ReservedAddresses('10.0.0.0/24')).toEqual([
      '10.0.0.0',
      '10.0.0.1',
      '10.0.0.2',
      '10.0.0.3',
      '10.0.0.255',
    ]);
    expect(ec2ReservedAddresses('10.0.0.16/28')).toEqual([
      '10.0.0.16',
      '10.0.0.17',
      '10.0.0.18',
      '10.0.0.19',
      '10.0.0.31',
    ]);
    expect(ec2ReservedAddresses('10.0.0.4/30')).toEqual([
      '10.0.0.4',
      '10.0.0.5',
      '10.0.0.6',
      '10.0.0.7',
    ]);
  });
});

describe('allocateAddress', () => {
  const none = new Set<string>();

  test('lowest free host address, skipping network, reserved and taken', () => {
    expect(allocateAddress('10.0.0.0/24', none)).toBe('10.0.0.1');
    expect(allocateAddress('10.0.0.0/24', none, { reserved: ['10.0.0.1'] })).toBe('10.0.0.2');
    expect(
      allocateAddress('10.0.0.0/24', new Set(['10.0.0.4', '10.0.0.5']), {
        reserved: ec2ReservedAddresses('10.0.0.0/24'),
      }),
    ).toBe('10.0.0.6');
  });

  test('never hands out the broadcast address, returns null when full', () => {
    const cidr = '10.0.0.0/29'; // hosts .1-.6
    const reserved = ['10.0.0.1'];
    const taken = new Set<string>();
    const got: string[] = [];
    for (;;) {
      const ip = allocateAddress(cidr, taken, { reserved });
      if (ip === null) break;
      got.push(ip);
      taken.add(ip);
    }
    expect(got).toEqual(['10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.5', '10.0.0.6']);
    expect(countAvailable(cidr, got.length, { reserved })).toBe(0);
  });

  test('an address freed in the middle is reused first', () => {
    const taken = new Set(['10.0.0.2', '10.0.0.4']);
    expect(allocateAddress('10.0.0.0/24', taken, { reserved: ['10.0.0.1'] })).toBe('10.0.0.3');
  });

  test('preferred: used when available, else the normal scan', () => {
    const opts = { reserved: ['10.0.0.1'] };
    expect(allocateAddress('10.0.0.0/24', none, { ...opts, preferred: '10.0.0.77' })).toBe(
      '10.0.0.77',
    );
    expect(
      allocateAddress('10.0.0.0/24', new Set(['10.0.0.77']), { ...opts, preferred: '10.0.0.77' }),
    ).toBe('10.0.0.2');
    expect(allocateAddress('10.0.0.0/24', none, { ...opts, preferred: '10.0.0.1' })).toBe(
      '10.0.0.2',
    );
    expect(allocateAddress('10.0.0.0/24', none, { ...opts, preferred: '10.0.0.255' })).toBe(
      '10.0.0.2',
    );
    expect(allocateAddress('10.0.0.0/24', none, { ...opts, preferred: '10.9.0.7' })).toBe(
      '10.0.0.2',
    );
    expect(() => allocateAddress('10.0.0.0/24', none, { preferred: 'nope' })).toThrow(
      NetworkValidationError,
    );
  });

  test('a /16 full except one address is scanned quickly', () => {
    const cidr = parseCidr('10.1.0.0/16');
    const taken = new Set<string>();
    for (let n = cidr.firstHostInt; n <= cidr.lastHostInt; n++) taken.add(intToIp(n));
    taken.delete('10.1.255.254');
    const t = Date.now();
    expect(allocateAddress(cidr, taken)).toBe('10.1.255.254');
    expect(Date.now() - t).toBeLessThan(500);
  });

  test('/31 and /32 use every address', () => {
    expect(allocateAddress('10.0.0.4/31', new Set(['10.0.0.4']))).toBe('10.0.0.5');
    expect(allocateAddress('10.0.0.4/32', none)).toBe('10.0.0.4');
  });

  test.each([
    ['10.0.1.1', 'outside'],
    ['10.0.0.0', 'network'],
    ['10.0.0.255', 'broadcast'],
    ['10.0.0.1', 'reserved'],
    ['10.0.0.9', 'taken'],
    ['10.0.0.10', 'available'],
  ])('addressAvailability(%s) = %s', (ip, expected) => {
    expect(
      addressAvailability('10.0.0.0/24', ip, new Set(['10.0.0.9']), { reserved: ['10.0.0.1'] }),
    ).toBe(expected);
  });
});

describe('countAvailable', () => {
  test('EC2 semantics: /24 has 251 available with the 5 reserved', () => {
    expect(
      countAvailable('10.0.0.0/24', 0, { reserved: ec2ReservedAddresses('10.0.0.0/24') }),
    ).toBe(251);
    expect(
      countAvailable('10.0.0.0/28', 3, { reserved: ec2ReservedAddresses('10.0.0.0/28') }),
    ).toBe(8);
  });
  test('without reserved, hosts minus taken, never negative', () => {
    expect(countAvailable('10.0.0.0/24', 4)).toBe(250);
    expect(countAvailable('10.0.0.0/30', 9)).toBe(0);
    expect(
      countAvailable('10.0.0.0/24', 0, { reserved: ['10.0.0.1', '10.0.0.1', '10.9.9.9'] }),
    ).toBe(253);
    expect(() => countAvailable('10.0.0.0/24', -1)).toThrow(NetworkValidationError);
  });
});
