import {
  EMPTY_ALLOW_LIST,
  isAllowedAddress,
  isAllowedHostName,
  outboundUrlProblem,
  parseOutboundAllowList,
  refusedAddressReason,
} from '@minicloud/domain';

describe('parseOutboundAllowList', () => {
  test('reads host names, CIDRs and single addresses', () => {
    const { allow, problems } = parseOutboundAllowList(
      ' images.lan , Mirror.Example.COM.,10.0.0.0/8,fd00::/8,192.0.2.7,,',
    );
    expect(problems).toEqual([]);
    expect(allow.hosts).toEqual(['images.lan', 'mirror.example.com']);
    expect(allow.blocks.map((b) => b.text)).toEqual(['10.0.0.0/8', 'fd00::/8', '192.0.2.7/32']);
    expect(parseOutboundAllowList('')).toEqual({ allow: EMPTY_ALLOW_LIST, problems: [] });
  });

  test('reports every bad entry: malformed, host bits, too broad', () => {
    const { problems } = parseOutboundAllowList(
      'ok.lan,bad_host!,10.0.0.1/8,0.0.0.0/0,::/0,10.0.0.0/7,fd00::/33x,fc00::/6,-x.lan',
    );
    expect(problems).toEqual([
      expect.stringContaining('"bad_host!" is neither a host name nor a CIDR'),
      expect.stringContaining('"10.0.0.1/8" is not a CIDR'),
      expect.stringContaining('0.0.0.0/0 is too broad'),
      expect.stringContaining('::/0 is too broad'),
      expect.stringContaining('10.0.0.0/7 is too broad'),
      expect.stringContaining('"fd00::/33x" is not a CIDR'),
      expect.stringContaining('fc00::/6 is too broad'),
      expect.stringContaining('"-x.lan" is neither'),
    ]);
  });

  test('matching: names exactly (case-insensitive), addresses by block, mapped IPv6 too', () => {
    const { allow } = parseOutboundAllowList('images.lan,10.0.0.0/8,127.0.0.1');
    expect(isAllowedHostName(allow, 'IMAGES.lan.')).toBe(true);
    expect(isAllowedHostName(allow, 'evil.images.lan')).toBe(false);
    expect(isAllowedAddress(allow, '10.9.8.7')).toBe(true);
    expect(isAllowedAddress(allow, '::ffff:10.9.8.7')).toBe(true);
    expect(isAllowedAddress(allow, '127.0.0.1')).toBe(true);
    expect(isAllowedAddress(allow, '127.0.0.2')).toBe(false);
    expect(isAllowedAddress(allow, '192.168.0.1')).toBe(false);
  });
});

describe('refusedAddressReason', () => {
  test('refuses every non-public class and the host own addresses by default', () => {
    expect(refusedAddressReason('8.8.8.8', EMPTY_ALLOW_LIST)).toBeNull();
    expect(refusedAddressReason('127.0.0.1', EMPTY_ALLOW_LIST)).toMatch(/loopback/);
    expect(refusedAddressReason('::ffff:169.254.169.254', EMPTY_ALLOW_LIST)).toMatch(/link-local/);
    expect(refusedAddressReason('100.64.1.1', EMPTY_ALLOW_LIST)).toMatch(/shared/);
    expect(refusedAddressReason('fd00::1', EMPTY_ALLOW_LIST)).toMatch(/private/);
    expect(refusedAddressReason('8.8.8.8', EMPTY_ALLOW_LIST, ['8.8.8.8'])).toMatch(
      /address of this host/,
    );
    expect(refusedAddressReason('::ffff:8.8.8.8', EMPTY_ALLOW_LIST, ['8.8.8.8'])).toMatch(
      /address of this host/,
    );
  });

  test('the allow-list lets a LAN server through, but never a non-unicast address', () => {
    const { allow } = parseOutboundAllowList('127.0.0.0/8,10.0.0.0/8,224.0.0.0/4,0.0.0.0/8');
    expect(refusedAddressReason('127.0.0.1', allow, ['127.0.0.1'])).toBeNull();
    expect(refusedAddressReason('10.1.1.1', allow)).toBeNull();
    expect(refusedAddressReason('224.0.0.1', allow)).toMatch(/multicast/);
    expect(refusedAddressReason('0.0.0.0', allow)).toMatch(/unspecified/);
  });
});

describe('outboundUrlProblem', () => {
  const none = EMPTY_ALLOW_LIST;
  test.each([
    ['ftp://example.com/x', /only http and https/],
    ['file:///etc/passwd', /only http and https/],
    ['http://user:pw@example.com/x', /credentials/],
    ['http://user@example.com/x', /credentials/],
    ['http://127.0.0.1:8080/x', /loopback/],
    ['http://2130706433/x', /127\.0\.0\.1 is a loopback/], // decimal spelling
    ['http://0x7f.1/x', /loopback/],
    ['http://[::1]/x', /loopback/],
    ['http://[::ffff:127.0.0.1]/x', /loopback/],
    ['http://169.254.169.254/latest/meta-data/', /link-local/],
    ['http://[fe80::1]/x', /link-local/],
    ['http://10.0.0.1/x', /private/],
    ['http://0.0.0.0/x', /unspecified/],
    ['http://localhost:9/x', /loopback name/],
    ['http://a.localhost/x', /loopback name/],
    ['http://[::1/x', /not a valid URL/],
    ['not a url', /not a valid URL/],
  ])('%s is refused', (url, why) => {
    expect(outboundUrlProblem(url, none)).toMatch(why);
  });

  test('public addresses and names pass (names are checked again at connect)', () => {
    expect(outboundUrlProblem('https://cloud.debian.org/images/x.qcow2', none)).toBeNull();
    expect(outboundUrlProblem('http://8.8.8.8/x', none)).toBeNull();
    expect(outboundUrlProblem('http://8.8.8.8/x', none, ['8.8.8.8'])).toMatch(/this host/);
  });

  test('the allow-list admits named hosts and blocks', () => {
    const { allow } = parseOutboundAllowList('localhost,127.0.0.1,images.lan');
    expect(outboundUrlProblem('http://localhost:9/x', allow)).toBeNull();
    expect(outboundUrlProblem('http://127.0.0.1:9/x', allow)).toBeNull();
    expect(outboundUrlProblem('http://[::1]:9/x', allow)).toMatch(/loopback/);
    expect(outboundUrlProblem('http://user:pw@images.lan/x', allow)).toMatch(/credentials/);
  });
});
