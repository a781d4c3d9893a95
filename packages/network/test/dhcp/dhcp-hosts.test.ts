import { NetworkValidationError } from '@minicloud/domain';
import {
  conflictingLeases,
  parseDhcpLeases,
  removeLeaseLines,
  renderDhcpHosts,
  renderVpcDhcpHosts,
} from '@minicloud/network';

const subnets = [
  { cidr: '10.1.2.0/24', gatewayIp: '10.1.2.1' },
  { cidr: '10.1.1.0/25', gatewayIp: '10.1.1.1' },
];

describe('renderDhcpHosts', () => {
  test('golden: sorted by address, MACs lower-cased, hostname optional, trailing newline', () => {
    expect(
      renderDhcpHosts([
        { mac: '52:54:00:AA:00:0a', ip: '10.11.0.10', hostname: 'ip-10-11-0-10' },
        { mac: '52:54:00:aa:00:02', ip: '10.11.0.2' },
        { mac: '52:54:00:aa:00:09', ip: '10.11.0.9', hostname: 'web' },
      ]),
    ).toBe(
      '52:54:00:aa:00:02,10.11.0.2\n52:54:00:aa:00:09,10.11.0.9,web\n52:54:00:aa:00:0a,10.11.0.10,ip-10-11-0-10\n',
    );
  });

  test('empty set renders the empty file', () => {
    expect(renderDhcpHosts([])).toBe('');
  });

  test('same set in another order renders the same bytes', () => {
    const a = [
      { mac: '52:54:00:00:00:01', ip: '10.11.0.5' },
      { mac: '52:54:00:00:00:02', ip: '10.11.0.4' },
    ];
    expect(renderDhcpHosts(a)).toBe(renderDhcpHosts([...a].reverse()));
  });

  test.each<[string, { mac: string; ip: string; hostname?: string }[]]>([
    ['bad MAC', [{ mac: '52:54:00:00:00', ip: '10.11.0.5' }]],
    ['multicast MAC', [{ mac: '01:54:00:00:00:01', ip: '10.11.0.5' }]],
    ['bad IP', [{ mac: '52:54:00:00:00:01', ip: '10.11.0.256' }]],
    ['hostname with dot', [{ mac: '52:54:00:00:00:01', ip: '10.11.0.5', hostname: 'a.b' }]],
    ['hostname with comma', [{ mac: '52:54:00:00:00:01', ip: '10.11.0.5', hostname: 'a,b' }]],
    ['hostname upper case', [{ mac: '52:54:00:00:00:01', ip: '10.11.0.5', hostname: 'Web' }]],
    ['hostname leading dash', [{ mac: '52:54:00:00:00:01', ip: '10.11.0.5', hostname: '-web' }]],
    [
      'hostname too long',
      [{ mac: '52:54:00:00:00:01', ip: '10.11.0.5', hostname: 'a'.repeat(64) }],
    ],
    ['hostname newline', [{ mac: '52:54:00:00:00:01', ip: '10.11.0.5', hostname: 'a\nb' }]],
    [
      'duplicate MAC (case-insensitive)',
      [
        { mac: '52:54:00:00:00:0a', ip: '10.11.0.5' },
        { mac: '52:54:00:00:00:0A', ip: '10.11.0.6' },
      ],
    ],
    [
      'duplicate IP',
      [
        { mac: '52:54:00:00:00:01', ip: '10.11.0.5' },
        { mac: '52:54:00:00:00:02', ip: '10.11.0.5' },
      ],
    ],
    [
      'duplicate hostname',
      [
        { mac: '52:54:00:00:00:01', ip: '10.11.0.5', hostname: 'a' },
        { mac: '52:54:00:00:00:02', ip: '10.11.0.6', hostname: 'a' },
      ],
    ],
  ])('rejects %s', (_what, rs) => {
    expect(() => renderDhcpHosts(rs)).toThrow(NetworkValidationError);
  });

  test('with the network: addresses must be hosts of the block and not the gateway', () => {
    const opts = { cidr: '10.11.0.0/24', gatewayIp: '10.11.0.1' };
    expect(() => renderDhcpHosts([{ mac: '52:54:00:00:00:01', ip: '10.12.0.5' }], opts)).toThrow(
      /not a host address/,
    );
    expect(() => renderDhcpHosts([{ mac: '52:54:00:00:00:01', ip: '10.11.0.255' }], opts)).toThrow(
      /not a host address/,
    );
    expect(() => renderDhcpHosts([{ mac: '52:54:00:00:00:01', ip: '10.11.0.1' }], opts)).toThrow(
      /gateway/,
    );
    expect(renderDhcpHosts([{ mac: '52:54:00:00:00:01', ip: '10.11.0.254' }], opts)).toBe(
      '52:54:00:00:00:01,10.11.0.254\n',
    );
  });
});

describe('leases', () => {
  const text = [
    '1795791870 52:54:00:00:00:0b 10.250.0.10 guestb 01:52:54:00:00:00:0b',
    '1795791853 52:54:00:00:00:0A 10.250.0.11 * *',
    'duid 00:01:00:01:2c:aa:bb:cc:dd:ee:ff:00:11:22',
    'garbage line',
    '',
  ].join('\n');

  test('parseDhcpLeases', () => {
    expect(parseDhcpLeases(text)).toEqual([
      {
        expires: 1795791870,
        mac: '52:54:00:00:00:0b',
        ip: '10.250.0.10',
        hostname: 'guestb',
        clientId: '01:52:54:00:00:00:0b',
      },
      {
        expires: 1795791853,
        mac: '52:54:00:00:00:0a',
        ip: '10.250.0.11',
        hostname: null,
        clientId: null,
      },
    ]);
    expect(parseDhcpLeases(null)).toEqual([]);
    expect(parseDhcpLeases('')).toEqual([]);
  });

  test('conflictingLeases: reserved IP leased to another MAC, or reserved MAC holding another IP', () => {
    const leases = parseDhcpLeases(text);
    // .10 now reserved for a new MAC: the old lease blocks it.
    expect(
      conflictingLeases(leases, [{ mac: '52:54:00:00:00:0c', ip: '10.250.0.10' }]).map((l) => l.ip),
    ).toEqual(['10.250.0.10']);
    // the MAC of .11 moved to .12
    expect(
      conflictingLeases(leases, [{ mac: '52:54:00:00:00:0a', ip: '10.250.0.12' }]).map((l) => l.ip),
    ).toEqual(['10.250.0.11']);
    // matching reservations and unrelated leases are no conflict
    expect(
      conflictingLeases(leases, [
        { mac: '52:54:00:00:00:0b', ip: '10.250.0.10' },
        { mac: '52:54:00:00:00:0d', ip: '10.250.0.20' },
      ]),
    ).toEqual([]);
  });

  test('removeLeaseLines keeps everything else', () => {
    const leases = parseDhcpLeases(text);
    const out = removeLeaseLines(text, [leases[0]!]);
    expect(out).not.toContain('10.250.0.10');
    expect(out).toContain('10.250.0.11');
    expect(out).toContain('duid');
  });
});

describe('renderVpcDhcpHosts', () => {
  test('reservations of every subnet in one file, sorted by address', () => {
    expect(
      renderVpcDhcpHosts(
        [
          { mac: '52:54:00:00:00:02', ip: '10.1.2.9', hostname: 'b' },
          { mac: '52:54:00:00:00:01', ip: '10.1.1.9' },
        ],
        subnets,
      ),
    ).toBe('52:54:00:00:00:01,10.1.1.9\n52:54:00:00:00:02,10.1.2.9,b\n');
  });

  test.each([
    ['outside every subnet', [{ mac: '52:54:00:00:00:01', ip: '10.1.1.200' }]],
    ['a router address', [{ mac: '52:54:00:00:00:01', ip: '10.1.2.1' }]],
    ['a network address', [{ mac: '52:54:00:00:00:01', ip: '10.1.2.0' }]],
    [
      'an address twice',
      [
        { mac: '52:54:00:00:00:01', ip: '10.1.2.9' },
        { mac: '52:54:00:00:00:02', ip: '10.1.2.9' },
      ],
    ],
  ])('refused: %s', (_what, reservations) => {
    expect(() => renderVpcDhcpHosts(reservations, subnets)).toThrow(NetworkValidationError);
  });
});
