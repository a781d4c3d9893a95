import { NetworkValidationError } from '@minicloud/domain';
import { dnsmasqPaths, renderVpcDnsmasqArgs, type VpcDnsmasqSpec } from '@minicloud/network';

const base: VpcDnsmasqSpec = {
  bridge: 'mcv0a0a0a0a0',
  subnets: [
    { cidr: '10.1.2.0/24', gatewayIp: '10.1.2.1' },
    { cidr: '10.1.1.0/25', gatewayIp: '10.1.1.1' },
  ],
  ...dnsmasqPaths('/var/lib/minicloud/vpcs/vpc-a'),
};

describe('renderVpcDnsmasqArgs', () => {
  test('golden: one tagged static range and router per subnet, sorted by address', () => {
    expect(renderVpcDnsmasqArgs(base)).toEqual([
      '--conf-file=/dev/null',
      '--pid-file=/var/lib/minicloud/vpcs/vpc-a/dnsmasq.pid',
      '--bind-interfaces',
      '--interface=mcv0a0a0a0a0',
      '--except-interface=lo',
      '--listen-address=10.1.1.1',
      '--listen-address=10.1.2.1',
      '--dhcp-range=set:sn0,10.1.1.0,static,255.255.255.128,12h',
      '--dhcp-option=tag:sn0,option:router,10.1.1.1',
      '--dhcp-range=set:sn1,10.1.2.0,static,255.255.255.0,12h',
      '--dhcp-option=tag:sn1,option:router,10.1.2.1',
      '--dhcp-hostsfile=/var/lib/minicloud/vpcs/vpc-a/dhcp-hosts',
      '--dhcp-leasefile=/var/lib/minicloud/vpcs/vpc-a/dnsmasq.leases',
      '--dhcp-authoritative',
      '--no-hosts',
      '--log-facility=/var/lib/minicloud/vpcs/vpc-a/dnsmasq.log',
    ]);
  });

  test('DNS off with servers, domain, lease time, MTU, DHCP logging', () => {
    expect(
      renderVpcDnsmasqArgs({
        ...base,
        dns: false,
        dnsServers: ['1.1.1.1'],
        domain: 'mc.internal',
        leaseTime: '1h',
        mtu: 1450,
        logDhcp: true,
      }).slice(-6),
    ).toEqual([
      '--log-facility=/var/lib/minicloud/vpcs/vpc-a/dnsmasq.log',
      '--port=0',
      '--dhcp-option=option:dns-server,1.1.1.1',
      '--domain=mc.internal',
      '--dhcp-option=option:mtu,1450',
      '--log-dhcp',
    ]);
  });

  test('domain with DNS on also answers locally for it', () => {
    const args = renderVpcDnsmasqArgs({ ...base, domain: 'minicloud.internal' });
    expect(args).toContain('--domain=minicloud.internal');
    expect(args).toContain('--local=/minicloud.internal/');
    expect(args).not.toContain('--port=0');
  });

  test.each<[string, Partial<VpcDnsmasqSpec>]>([
    ['no subnets', { subnets: [] }],
    [
      'overlapping subnets',
      {
        subnets: [
          { cidr: '10.1.0.0/23', gatewayIp: '10.1.0.1' },
          { cidr: '10.1.1.0/24', gatewayIp: '10.1.1.1' },
        ],
      },
    ],
    ['gateway outside its subnet', { subnets: [{ cidr: '10.1.0.0/24', gatewayIp: '10.1.1.1' }] }],
    ['bad bridge', { bridge: 'mc br' }],
    ['relative path', { pidFile: 'dnsmasq.pid' }],
    ['dnsServers with DNS on', { dnsServers: ['1.1.1.1'] }],
    ['bad lease time', { leaseTime: '1y' }],
    ['bridge too long', { bridge: 'a'.repeat(16) }],
    ['subnet cidr', { subnets: [{ cidr: '10.1.0.0/33', gatewayIp: '10.1.0.1' }] }],
    ['subnet cidr with host bits', { subnets: [{ cidr: '10.1.0.7/24', gatewayIp: '10.1.0.1' }] }],
    ['gateway = network address', { subnets: [{ cidr: '10.1.0.0/24', gatewayIp: '10.1.0.0' }] }],
    ['gateway = broadcast', { subnets: [{ cidr: '10.1.0.0/24', gatewayIp: '10.1.0.255' }] }],
    ['tiny subnet', { subnets: [{ cidr: '10.1.0.0/31', gatewayIp: '10.1.0.0' }] }],
    ['path with comma', { hostsFile: '/tmp/a,b' }],
    ['path with ..', { leaseFile: '/tmp/../etc/x' }],
    ['mtu', { mtu: 100 }],
    ['domain', { domain: 'bad_domain' }],
    ['dnsServers not IPs', { dns: false, dnsServers: ['one.one'] }],
  ])('refused: %s', (_what, over) => {
    expect(() => renderVpcDnsmasqArgs({ ...base, ...over })).toThrow(NetworkValidationError);
  });
});
