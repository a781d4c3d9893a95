import { NetworkValidationError } from '@minicloud/domain';
import {
  dnsmasqPaths,
  renderVpcDhcpHosts,
  renderVpcDnsmasqArgs,
  type VpcDnsmasqSpec,
} from '@minicloud/network';

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
  ])('refused: %s', (_what, over) => {
    expect(() => renderVpcDnsmasqArgs({ ...base, ...over })).toThrow(NetworkValidationError);
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
        base.subnets,
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
    expect(() => renderVpcDhcpHosts(reservations, base.subnets)).toThrow(NetworkValidationError);
  });
});
