import {
  assertBridgeName,
  assertHostname,
  assertIpv4,
  invalid,
  ipToInt,
  normalizeMac,
  parseCidr,
  type CidrInput,
} from '@minicloud/domain';
import { join } from 'node:path';

/**
 * Pure renderers for the one dnsmasq each network runs: its argv, its DHCP hosts file, and a
 * parser for its lease file.
 */

export interface DnsmasqSpec {
  bridge: string;
  cidr: string;
  gatewayIp: string;
  pidFile: string;
  hostsFile: string;
  leaseFile: string;
  logFile: string;
  /** Serve DNS on the gateway, forwarding to the host's resolvers (default true). */
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

export interface DnsmasqPaths {
  pidFile: string;
  hostsFile: string;
  leaseFile: string;
  logFile: string;
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

/**
 * The argv (without 'dnsmasq') of a network's DHCP/DNS server. It daemonizes and writes its pid
 * file; it reads nothing of the host's dnsmasq configuration; it answers only on the bridge and
 * only for MACs in the hosts file (static range); SIGHUP makes it re-read the hosts file.
 */
export function renderDnsmasqArgs(spec: DnsmasqSpec): string[] {
  const bridge = assertBridgeName(spec.bridge);
  const net = parseCidr(spec.cidr);
  const gw = assertIpv4(spec.gatewayIp, 'gateway address');
  assertGatewayInside(net, gw);
  const dns = spec.dns ?? true;
  const leaseTime = spec.leaseTime ?? '12h';
  if (!LEASE_TIME_RE.test(leaseTime)) {
    throw invalid('InvalidNetworkSpec', `invalid DHCP lease time ${JSON.stringify(leaseTime)}`);
  }
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
    `--listen-address=${gw}`,
    `--dhcp-range=${net.network},static,${net.netmask},${leaseTime}`,
    `--dhcp-hostsfile=${spec.hostsFile}`,
    `--dhcp-leasefile=${spec.leaseFile}`,
    '--dhcp-authoritative',
    `--dhcp-option=option:router,${gw}`,
    '--no-hosts',
    `--log-facility=${spec.logFile}`,
  ];
  if (dns) {
    // dnsmasq hands out its own (gateway) address as the DNS server and forwards to the
    // servers in the host's /etc/resolv.conf.
    if (spec.dnsServers?.length) {
      throw invalid('InvalidNetworkSpec', 'dnsServers is only used with dns: false');
    }
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
    if (!Number.isInteger(spec.mtu) || spec.mtu < 576 || spec.mtu > 65535) {
      throw invalid('InvalidNetworkSpec', `invalid MTU ${spec.mtu}`);
    }
    args.push(`--dhcp-option=option:mtu,${spec.mtu}`);
  }
  if (spec.logDhcp) args.push('--log-dhcp');
  return args;
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

export interface DhcpReservation {
  mac: string;
  ip: string;
  /** One DNS label; given to the guest (DHCP option 12) and resolvable through dnsmasq. */
  hostname?: string;
}

export interface RenderDhcpHostsOptions {
  /** When given, every address must be a host address of this block... */
  cidr?: CidrInput;
  /** ...and none may be the gateway. */
  gatewayIp?: string;
}

/**
 * The dnsmasq --dhcp-hostsfile text: one `mac,ip[,hostname]` line per reservation, sorted by
 * address so the same set always renders the same bytes. Duplicate MACs, addresses or
 * hostnames are refused: dnsmasq would silently pick one.
 */
export function renderDhcpHosts(
  reservations: readonly DhcpReservation[],
  options: RenderDhcpHostsOptions = {},
): string {
  const net = options.cidr === undefined ? null : parseCidr(options.cidr);
  const gw =
    options.gatewayIp === undefined ? null : assertIpv4(options.gatewayIp, 'gateway address');
  const macs = new Set<string>();
  const ips = new Set<string>();
  const names = new Set<string>();
  const rows = reservations.map((r) => {
    if (r === null || typeof r !== 'object')
      throw invalid('InvalidReservation', 'reservation must be an object');
    const mac = normalizeMac(r.mac);
    const ip = assertIpv4(r.ip, 'reserved address');
    const n = ipToInt(ip);
    if (net && (n < net.firstHostInt || n > net.lastHostInt)) {
      throw invalid('InvalidReservation', `${ip} is not a host address of ${net.cidr}`);
    }
    if (gw !== null && ip === gw)
      throw invalid('InvalidReservation', `${ip} is the gateway address`);
    if (macs.has(mac)) throw invalid('InvalidReservation', `MAC ${mac} is reserved twice`);
    if (ips.has(ip)) throw invalid('InvalidReservation', `address ${ip} is reserved twice`);
    macs.add(mac);
    ips.add(ip);
    let hostname: string | undefined;
    if (r.hostname !== undefined) {
      hostname = assertHostname(r.hostname);
      if (names.has(hostname))
        throw invalid('InvalidReservation', `hostname ${hostname} is reserved twice`);
      names.add(hostname);
    }
    return { n, line: hostname === undefined ? `${mac},${ip}` : `${mac},${ip},${hostname}` };
  });
  rows.sort((a, b) => a.n - b.n);
  return rows.map((r) => `${r.line}\n`).join('');
}

export interface DhcpLease {
  /** Unix seconds (0 = infinite). */
  expires: number;
  mac: string;
  ip: string;
  hostname: string | null;
  clientId: string | null;
}

/** Parse dnsmasq's lease file (IPv4 lines; the DHCPv6 'duid' line and anything odd are skipped). */
export function parseDhcpLeases(text: string | null): DhcpLease[] {
  if (!text) return [];
  const out: DhcpLease[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4) continue;
    const [expires, mac, ip, hostname, clientId] = f as [string, string, string, string, string?];
    if (!/^[0-9]+$/.test(expires) || !/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(mac)) continue;
    if (!/^[0-9]+(\.[0-9]+){3}$/.test(ip)) continue;
    out.push({
      expires: Number(expires),
      mac: mac.toLowerCase(),
      ip,
      hostname: hostname === '*' ? null : hostname,
      clientId: clientId === undefined || clientId === '*' ? null : clientId,
    });
  }
  return out;
}

/**
 * Leases that would stop dnsmasq from honouring a reservation: the reserved address leased to
 * another MAC ("not using configured address ... because it is leased to ..."), or the reserved
 * MAC holding another address. They happen when instances are terminated and addresses reused.
 */
export function conflictingLeases(
  leases: readonly DhcpLease[],
  reservations: readonly DhcpReservation[],
): DhcpLease[] {
  const byIp = new Map<string, string>();
  const byMac = new Map<string, string>();
  for (const r of reservations) {
    const mac = r.mac.toLowerCase();
    byIp.set(r.ip, mac);
    byMac.set(mac, r.ip);
  }
  return leases.filter((l) => {
    const macForIp = byIp.get(l.ip);
    if (macForIp !== undefined && macForIp !== l.mac) return true;
    const ipForMac = byMac.get(l.mac);
    return ipForMac !== undefined && ipForMac !== l.ip;
  });
}

/** The lease file without the given leases (for editing while dnsmasq is stopped). */
export function removeLeaseLines(text: string, remove: readonly DhcpLease[]): string {
  const drop = new Set(remove.map((l) => `${l.mac} ${l.ip}`));
  const kept = text.split('\n').filter((line) => {
    const f = line.trim().split(/\s+/);
    return !(f.length >= 3 && drop.has(`${(f[1] ?? '').toLowerCase()} ${f[2]}`));
  });
  return kept.join('\n');
}
