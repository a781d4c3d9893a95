import {
  assertBridgeName,
  assertIpv4,
  invalid,
  ipToInt,
  parseCidr,
  type ParsedCidr,
} from '@minicloud/domain';
import {
  assertDomain,
  assertGatewayInside,
  assertSafePath,
  renderDhcpHosts,
  type DhcpReservation,
} from './dnsmasq.js';

/**
 * Pure renderers for the one dnsmasq of a VPC. The VPC's bridge carries one router address per
 * subnet; dnsmasq gets one static --dhcp-range per subnet and answers a client from the range
 * its reserved address falls in (dnsmasq matches ranges against all addresses of the interface
 * the request came in on). Router, netmask and (with DNS on) the DNS server a guest gets are
 * those of its own subnet.
 */

export interface VpcDhcpSubnet {
  cidr: string;
  gatewayIp: string;
}

export interface VpcDnsmasqSpec {
  bridge: string;
  /** At least one. */
  subnets: readonly VpcDhcpSubnet[];
  pidFile: string;
  hostsFile: string;
  leaseFile: string;
  logFile: string;
  /** Serve DNS on every router address, forwarding to the host's resolvers (default true). */
  dns?: boolean;
  /** With dns: false, hand these DNS servers to guests instead (default: none). */
  dnsServers?: readonly string[];
  domain?: string;
  /** DHCP lease time (default '12h'). */
  leaseTime?: string;
  mtu?: number;
  logDhcp?: boolean;
}

export interface CheckedSubnet {
  net: ParsedCidr;
  gatewayIp: string;
}

const LEASE_TIME_RE = /^(?:infinite|[1-9][0-9]*[smhdw]?)$/;

/** Parse, check (gateway inside, no overlap) and sort a VPC's subnets by address. */
export function checkVpcSubnets(subnets: readonly VpcDhcpSubnet[]): CheckedSubnet[] {
  if (!Array.isArray(subnets)) throw invalid('InvalidNetworkSpec', 'subnets must be an array');
  const out = subnets.map((s) => {
    const net = parseCidr(s?.cidr);
    const gatewayIp = assertIpv4(s.gatewayIp, 'gateway address');
    assertGatewayInside(net, gatewayIp);
    return { net, gatewayIp };
  });
  out.sort((a, b) => a.net.networkInt - b.net.networkInt);
  for (let i = 1; i < out.length; i++) {
    if (out[i]!.net.networkInt <= out[i - 1]!.net.broadcastInt) {
      throw invalid(
        'InvalidNetworkSpec',
        `subnets ${out[i - 1]!.net.cidr} and ${out[i]!.net.cidr} overlap`,
      );
    }
  }
  return out;
}

/** The argv (without 'dnsmasq') of a VPC's DHCP/DNS server; see renderDnsmasqArgs. */
export function renderVpcDnsmasqArgs(spec: VpcDnsmasqSpec): string[] {
  const bridge = assertBridgeName(spec.bridge);
  const subnets = checkVpcSubnets(spec.subnets);
  if (subnets.length === 0)
    throw invalid('InvalidNetworkSpec', `VPC bridge ${bridge}: dnsmasq needs at least one subnet`);
  const dns = spec.dns ?? true;
  const leaseTime = spec.leaseTime ?? '12h';
  if (!LEASE_TIME_RE.test(leaseTime))
    throw invalid('InvalidNetworkSpec', `invalid DHCP lease time ${JSON.stringify(leaseTime)}`);
  for (const [k, p] of Object.entries({
    pidFile: spec.pidFile,
    hostsFile: spec.hostsFile,
    leaseFile: spec.leaseFile,
    logFile: spec.logFile,
  })) {
    assertSafePath(p, k);
  }
  const args = [
    '--conf-file=/dev/null',
    `--pid-file=${spec.pidFile}`,
    '--bind-interfaces',
    `--interface=${bridge}`,
    '--except-interface=lo',
    ...subnets.map((s) => `--listen-address=${s.gatewayIp}`),
  ];
  subnets.forEach((s, i) => {
    // The tag ties the router option to its range: each guest gets its own subnet's router.
    args.push(
      `--dhcp-range=set:sn${i},${s.net.network},static,${s.net.netmask},${leaseTime}`,
      `--dhcp-option=tag:sn${i},option:router,${s.gatewayIp}`,
    );
  });
  args.push(
    `--dhcp-hostsfile=${spec.hostsFile}`,
    `--dhcp-leasefile=${spec.leaseFile}`,
    '--dhcp-authoritative',
    '--no-hosts',
    `--log-facility=${spec.logFile}`,
  );
  if (dns) {
    // dnsmasq hands out its own address in the client's subnet as the DNS server.
    if (spec.dnsServers?.length)
      throw invalid('InvalidNetworkSpec', 'dnsServers is only used with dns: false');
  } else {
    args.push('--port=0');
    const servers = (spec.dnsServers ?? []).map((s) => assertIpv4(s, 'DNS server'));
    if (servers.length) args.push(`--dhcp-option=option:dns-server,${servers.join(',')}`);
  }
  if (spec.domain !== undefined) {
    const domain = assertDomain(spec.domain);
    args.push(`--domain=${domain}`);
    if (dns) args.push(`--local=/${domain}/`);
  }
  if (spec.mtu !== undefined) {
    if (!Number.isInteger(spec.mtu) || spec.mtu < 576 || spec.mtu > 65535)
      throw invalid('InvalidNetworkSpec', `invalid MTU ${spec.mtu}`);
    args.push(`--dhcp-option=option:mtu,${spec.mtu}`);
  }
  if (spec.logDhcp) args.push('--log-dhcp');
  return args;
}

/**
 * The hosts file of a VPC's dnsmasq: every address must be a host address of one of the
 * subnets and no router address; duplicates are refused (see renderDhcpHosts).
 */
export function renderVpcDhcpHosts(
  reservations: readonly DhcpReservation[],
  subnets: readonly VpcDhcpSubnet[],
): string {
  const checked = checkVpcSubnets(subnets);
  const routers = new Set(checked.map((s) => s.gatewayIp));
  for (const r of reservations) {
    const ip = assertIpv4(r?.ip, 'reserved address');
    const n = ipToInt(ip);
    if (!checked.some((s) => n >= s.net.firstHostInt && n <= s.net.lastHostInt)) {
      throw invalid('InvalidReservation', `${ip} is not a host address of any subnet of the VPC`);
    }
    if (routers.has(ip)) throw invalid('InvalidReservation', `${ip} is a router address`);
  }
  return renderDhcpHosts(reservations);
}
