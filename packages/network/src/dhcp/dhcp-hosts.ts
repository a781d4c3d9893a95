import {
  assertHostname,
  assertIpv4,
  invalid,
  ipToInt,
  normalizeMac,
  parseCidr,
  type CidrInput,
} from '@minicloud/domain';
import { checkVpcSubnets, type VpcDhcpSubnet } from './dnsmasq-args.js';

/**
 * Pure renderers and parsers for dnsmasq's DHCP files: the hosts file (the reservations) and
 * the lease file.
 */

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
