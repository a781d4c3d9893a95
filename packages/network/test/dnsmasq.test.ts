import { NetworkValidationError } from '@minicloud/domain';
import {
  conflictingLeases,
  dnsmasqPaths,
  parseDhcpLeases,
  removeLeaseLines,
  renderDhcpHosts,
  renderDnsmasqArgs,
  type DnsmasqSpec,
} from '@minicloud/network';

const base: DnsmasqSpec = {
  bridge: 'mcbr0',
  cidr: '10.11.0.0/24',
  gatewayIp: '10.11.0.1',
  ...dnsmasqPaths('/var/lib/minicloud/networks/mcbr0'),
};

describe('renderDnsmasqArgs', () => {
  test('golden: defaults (DNS on, 12h static leases)', () => {
    expect(renderDnsmasqArgs(base)).toEqual([
      '--conf-file=/dev/null',
      '--pid-file=/var/lib/minicloud/networks/mcbr0/dnsmasq.pid',
      '--bind-interfaces',
      '--interface=mcbr0',
      '--except-interface=lo',
      '--listen-address=10.11.0.1',
      '--dhcp-range=10.11.0.0,static,255.255.255.0,12h',
      '--dhcp-hostsfile=/var/lib/minicloud/networks/mcbr0/dhcp-hosts',
      '--dhcp-leasefile=/var/lib/minicloud/networks/mcbr0/dnsmasq.leases',
      '--dhcp-authoritative',
      '--dhcp-option=option:router,10.11.0.1',
      '--no-hosts',
      '--log-facility=/var/lib/minicloud/networks/mcbr0/dnsmasq.log',
    ]);
  });

  test('golden: DNS off with explicit servers, domain, lease time, MTU, DHCP logging', () => {
    expect(
      renderDnsmasqArgs({
        ...base,
        cidr: '172.20.0.0/22',
        gatewayIp: '172.20.0.1',
        dns: false,
        dnsServers: ['1.1.1.1', '9.9.9.9'],
        domain: 'minicloud.internal',
        leaseTime: '1h',
        mtu: 1450,
        logDhcp: true,
      }).slice(6),
    ).toEqual([
      '--dhcp-range=172.20.0.0,static,255.255.252.0,1h',
      '--dhcp-hostsfile=/var/lib/minicloud/networks/mcbr0/dhcp-hosts',
      '--dhcp-leasefile=/var/lib/minicloud/networks/mcbr0/dnsmasq.leases',
      '--dhcp-authoritative',
      '--dhcp-option=option:router,172.20.0.1',
      '--no-hosts',
      '--log-facility=/var/lib/minicloud/networks/mcbr0/dnsmasq.log',
      '--port=0',
      '--dhcp-option=option:dns-server,1.1.1.1,9.9.9.9',
      '--domain=minicloud.internal',
      '--dhcp-option=option:mtu,1450',
      '--log-dhcp',
    ]);
  });

  test('domain with DNS on also answers locally for it', () => {
    const args = renderDnsmasqArgs({ ...base, domain: 'minicloud.internal' });
    expect(args).toContain('--domain=minicloud.internal');
    expect(args).toContain('--local=/minicloud.internal/');
    expect(args).not.toContain('--port=0');
  });

  test.each<[string, Partial<DnsmasqSpec>]>([
    ['bridge name', { bridge: 'MC-br0' }],
    ['bridge too long', { bridge: 'a'.repeat(16) }],
    ['cidr', { cidr: '10.11.0.0/33' }],
    ['cidr with host bits', { cidr: '10.11.0.7/24' }],
    ['gateway outside', { gatewayIp: '10.12.0.1' }],
    ['gateway = network address', { gatewayIp: '10.11.0.0' }],
    ['gateway = broadcast', { gatewayIp: '10.11.0.255' }],
    ['tiny block', { cidr: '10.11.0.0/31', gatewayIp: '10.11.0.0' }],
    ['relative path', { pidFile: 'x.pid' }],
    ['path with comma', { hostsFile: '/tmp/a,b' }],
    ['path with ..', { leaseFile: '/tmp/../etc/x' }],
    ['lease time', { leaseTime: '12x' }],
    ['mtu', { mtu: 100 }],
    ['domain', { domain: 'bad_domain' }],
    ['dnsServers with dns on', { dnsServers: ['1.1.1.1'] }],
    ['dnsServers not IPs', { dns: false, dnsServers: ['one.one'] }],
  ])('rejects bad %s', (_what, patch) => {
    expect(() => renderDnsmasqArgs({ ...base, ...patch })).toThrow(NetworkValidationError);
  });
});

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
