import {
  assertBridgeName,
  assertIpv4,
  invalid,
  ipToInt,
  parseCidr,
  type CidrInput,
  type ParsedCidr,
} from '@minicloud/domain';
import { join } from 'node:path';

/**
 * Pure renderers for the one dnsmasq of a VPC: its files and its argv. The VPC's bridge carries
 * one router address per subnet; dnsmasq gets one static --dhcp-range per subnet and answers a
 * client from the range its reserved address falls in (dnsmasq matches ranges against all
 * addresses of the interface the request came in on). Router, netmask and (with DNS on) the DNS
 * server a guest gets are those of its own subnet.
 */

export interface DnsmasqPaths {
  pidFile: string;
  hostsFile: string;
  leaseFile: string;
  logFile: string;
}

export interface VpcDhcpSubnet {
  cidr: string;
  gatewayIp: string;
}

export interface VpcDnsmasqSpec extends DnsmasqPaths {
  bridge: string;
  /** At least one. */
  subnets: readonly VpcDhcpSubnet[];
  /** Serve DNS on every router address, forwarding to the host's resolvers (default true). */
  dns?: boolean;
  /** With dns: false, hand these DNS servers to guests instead (default: none). */
  dnsServers?: readonly string[];
  /** Search domain given to guests; with dns, dnsmasq also answers for <hostname>.<domain>. */
  domain?: string;
  /** DHCP lease time: seconds, or a number with s/m/h/d/w, or 'infinite' (default '12h'). */
  leaseTime?: string;
  /** MTU handed to guests (DHCP option 26). */
  mtu?: number;
  /** Log every DHCP transaction in detail (default false: one line per message). */
  logDhcp?: boolean;
}

export interface CheckedSubnet {
  net: ParsedCidr;
  gatewayIp: string;
}

/** Where a network's dnsmasq keeps its files, inside the network's state directory. */
export function dnsmasqPaths(stateDir: string): DnsmasqPaths {
  return {
    pidFile: join(stateDir, 'dnsmasq.pid'),
    hostsFile: join(stateDir, 'dhcp-hosts'),
    leaseFile: join(stateDir, 'dnsmasq.leases'),
    logFile: join(stateDir, 'dnsmasq.log'),
  };
}

const SAFE_PATH_RE = /^\/[A-Za-z0-9_./-]*$/;
const LEASE_TIME_RE = /^(?:infinite|[1-9][0-9]*[smhdw]?)$/;
const LABEL = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
const DOMAIN_RE = new RegExp(`^(?=.{1,253}$)${LABEL}(?:\\.${LABEL})*$`);

/** An absolute path of plain characters (it goes into argv and into dnsmasq's option parser). */
export function assertSafePath(path: string, what = 'path'): string {
  if (typeof path !== 'string' || !SAFE_PATH_RE.test(path) || path.split('/').includes('..')) {
    throw invalid(
      'InvalidPath',
      `${what} must be an absolute path of [A-Za-z0-9_./-], got ${JSON.stringify(path)}`,
    );
  }
  return path;
}

export function assertDomain(domain: string): string {
  if (typeof domain !== 'string' || !DOMAIN_RE.test(domain)) {
    throw invalid('InvalidNetworkSpec', `invalid DNS domain ${JSON.stringify(domain)}`);
  }
  return domain;
}

export function assertGatewayInside(cidr: CidrInput, gatewayIp: string): void {
  const net = parseCidr(cidr);
  if (net.prefixLength > 30) {
    throw invalid(
      'InvalidNetworkSpec',
      `${net.cidr} is too small for a gateway and guests (at most /30)`,
    );
  }
  const g = ipToInt(gatewayIp);
  if (g < net.firstHostInt || g > net.lastHostInt) {
    throw invalid(
      'InvalidNetworkSpec',
      `gateway ${gatewayIp} is not a host address of ${net.cidr}`,
    );
  }
}

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

/**
 * The argv (without 'dnsmasq') of a VPC's DHCP/DNS server. It daemonizes and writes its pid
 * file; it reads nothing of the host's dnsmasq configuration (--conf-file=/dev/null, which is
 * also how our processes are recognised); it answers only on the bridge and only for MACs in the
 * hosts file (static ranges); SIGHUP makes it re-read the hosts file.
 */
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
