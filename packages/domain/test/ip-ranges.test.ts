import {
  blockContains,
  classifyAddress,
  parseAddressBlock,
  parseIp,
  rangeToCidrs,
  sameAddress,
} from '@minicloud/domain';

describe('rangeToCidrs', () => {
  test('covers exactly the range with the fewest blocks', () => {
    expect(rangeToCidrs('198.51.100.16', '198.51.100.31')).toEqual(['198.51.100.16/28']);
    expect(rangeToCidrs('198.51.100.5', '198.51.100.5')).toEqual(['198.51.100.5/32']);
    expect(rangeToCidrs('198.51.100.3', '198.51.100.9')).toEqual([
      '198.51.100.3/32',
      '198.51.100.4/30',
      '198.51.100.8/31',
    ]);
    expect(rangeToCidrs('0.0.0.0', '255.255.255.255')).toEqual(['0.0.0.0/0']);
  });
});

describe('parseIp', () => {
  test('reads IPv4, IPv6 (compressed, embedded IPv4, brackets, zone) and refuses the rest', () => {
    expect(parseIp('10.1.2.3')).toEqual({ family: 4, value: 0x0a010203n });
    expect(parseIp('::1')).toEqual({ family: 6, value: 1n });
    expect(parseIp('[::1]')).toEqual({ family: 6, value: 1n });
    expect(parseIp('fe80::1%eth0')).toEqual({ family: 6, value: (0xfe80n << 112n) | 1n });
    expect(parseIp('::ffff:127.0.0.1')).toEqual({ family: 6, value: 0xffff7f000001n });
    expect(parseIp('1:2:3:4:5:6:7:8')?.value).toBe(0x00010002000300040005000600070008n);
    expect(parseIp('::')).toEqual({ family: 6, value: 0n });
    for (const bad of [
      '',
      'localhost',
      '1.2.3',
      '1.2.3.256',
      '010.0.0.1',
      '1:2:3:4:5:6:7:8:9',
      '1::2::3',
      '12345::',
      ':::',
      '1:2:3:4:5:6:7::8', // "::" must stand for at least one group
      '::1.2.3',
      'abc',
    ]) {
      expect([bad, parseIp(bad)]).toEqual([bad, null]);
    }
  });
});

describe('parseAddressBlock / blockContains', () => {
  test('CIDRs and single addresses, v4 and v6; host bits and bad lengths refused', () => {
    const b = parseAddressBlock('10.0.0.0/8')!;
    expect(b.text).toBe('10.0.0.0/8');
    expect(blockContains(b, parseIp('10.255.0.1')!)).toBe(true);
    expect(blockContains(b, parseIp('11.0.0.1')!)).toBe(false);
    expect(blockContains(parseAddressBlock('192.0.2.7')!, parseIp('192.0.2.7')!)).toBe(true);
    expect(blockContains(parseAddressBlock('192.0.2.7')!, parseIp('192.0.2.8')!)).toBe(false);
    expect(blockContains(parseAddressBlock('fd00::/8')!, parseIp('fd12::1')!)).toBe(true);
    expect(blockContains(parseAddressBlock('fd00::/8')!, parseIp('10.0.0.1')!)).toBe(false);
    for (const bad of ['10.0.0.1/8', '10.0.0.0/33', '10.0.0.0/', '::/129', 'x/8', '10.0.0.0/08']) {
      expect([bad, parseAddressBlock(bad)]).toEqual([bad, null]);
    }
  });
});

describe('classifyAddress', () => {
  test.each([
    ['8.8.8.8', 'public'],
    ['1.1.1.1', 'public'],
    ['0.0.0.0', 'unspecified'],
    ['0.1.2.3', 'unspecified'],
    ['127.0.0.1', 'loopback'],
    ['127.255.255.254', 'loopback'],
    ['10.0.0.1', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['172.32.0.1', 'public'],
    ['172.15.255.255', 'public'],
    ['192.168.1.1', 'private'],
    ['100.64.0.1', 'shared'],
    ['100.127.255.255', 'shared'],
    ['100.128.0.1', 'public'],
    ['169.254.169.254', 'link-local'],
    ['192.0.0.8', 'reserved'],
    ['192.0.2.1', 'documentation'],
    ['198.18.0.1', 'reserved'],
    ['198.51.100.1', 'documentation'],
    ['203.0.113.1', 'documentation'],
    ['224.0.0.1', 'multicast'],
    ['239.255.255.255', 'multicast'],
    ['240.0.0.1', 'reserved'],
    ['255.255.255.255', 'broadcast'],
    ['::', 'unspecified'],
    ['::1', 'loopback'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['::ffff:169.254.169.254', 'link-local'],
    ['::ffff:10.0.0.1', 'private'],
    ['::ffff:8.8.8.8', 'public'],
    ['::ffff:0.0.0.0', 'unspecified'],
    ['::127.0.0.1', 'reserved'],
    ['64:ff9b::7f00:1', 'loopback'],
    ['64:ff9b::8.8.8.8', 'public'],
    ['64:ff9b:1::1', 'private'],
    ['2002:7f00:1::', 'loopback'],
    ['2002:0808:0808::1', 'public'],
    ['2001:db8::1', 'documentation'],
    ['2001::1', 'reserved'],
    ['100::1', 'reserved'],
    ['fc00::1', 'private'],
    ['fd12:3456::1', 'private'],
    ['fe80::1', 'link-local'],
    ['fe80::1%eth0', 'link-local'],
    ['febf::1', 'link-local'],
    ['fec0::1', 'private'],
    ['ff02::1', 'multicast'],
    ['2a00:1450:4001::1', 'public'],
    ['2606:4700::1111', 'public'],
    ['4000::1', 'reserved'],
  ])('%s is %s', (ip, cls) => {
    expect(classifyAddress(ip)).toBe(cls);
  });

  test('refuses what is not an address', () => {
    expect(() => classifyAddress('localhost')).toThrow(/invalid IP address/);
  });

  test('sameAddress treats an IPv4-mapped IPv6 address as the IPv4 address', () => {
    expect(sameAddress('::ffff:10.0.0.1', '10.0.0.1')).toBe(true);
    expect(sameAddress('::1', '0:0::1')).toBe(true);
    expect(sameAddress('10.0.0.1', '10.0.0.2')).toBe(false);
    expect(sameAddress('x', 'x')).toBe(false);
  });
});
