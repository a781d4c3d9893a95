import { intToIp, ipToInt, isIpv4 } from './ipam.js';
import { invalid } from './validation.js';

/** A first-last address range (e.g. a public address pool) as the fewest CIDRs covering exactly it. */
export function rangeToCidrs(firstIp: string, lastIp: string): string[] {
  let n = ipToInt(firstIp);
  const last = ipToInt(lastIp);
  const out: string[] = [];
  while (n <= last) {
    let size = 32;
    // The largest block that starts at n (aligned) and ends at or before last.
    while (size > 0) {
      const block = 2 ** (32 - (size - 1));
      if (n % block !== 0 || n + block - 1 > last) break;
      size--;
    }
    out.push(`${intToIp(n)}/${size}`);
    n += 2 ** (32 - size);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Address classes: which addresses an outbound fetch made on a user's behalf may reach.

/** An IPv4 or IPv6 address as a number (IPv4 in 32 bits, IPv6 in 128). */
export interface ParsedIp {
  readonly family: 4 | 6;
  readonly value: bigint;
}

/** Parse a dotted-quad IPv4 or a textual IPv6 address (brackets and a %zone allowed); null if neither. */
export function parseIp(text: string): ParsedIp | null {
  if (typeof text !== 'string') return null;
  let s = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
  const v4 = ipv4Value(s);
  if (v4 !== null) return { family: 4, value: v4 };
  const zone = s.indexOf('%');
  if (zone >= 0) s = s.slice(0, zone);
  const v6 = parseIpv6(s);
  return v6 === null ? null : { family: 6, value: v6 };
}

// A helper, so the type guard isIpv4 does not narrow the caller's string to never.
function ipv4Value(s: string): bigint | null {
  return isIpv4(s) ? BigInt(ipToInt(s)) : null;
}

function parseIpv6(s: string): bigint | null {
  if (!/^[0-9a-fA-F:.]{2,45}$/.test(s)) return null;
  const halves = s.split('::');
  if (halves.length > 2) return null;
  const groups = (part: string): number[] | null => {
    if (part === '') return [];
    const out: number[] = [];
    const items = part.split(':');
    for (let i = 0; i < items.length; i++) {
      const item = items[i] as string;
      if (i === items.length - 1 && item.includes('.')) {
        if (!isIpv4(item)) return null;
        const n = ipToInt(item);
        out.push(n >>> 16, n & 0xffff);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(item)) {
        out.push(parseInt(item, 16));
      } else return null;
    }
    return out;
  };
  const head = groups(halves[0] as string);
  const tail = halves.length === 2 ? groups(halves[1] as string) : [];
  if (!head || !tail) return null;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return null;
  const all = [...head, ...new Array<number>(missing).fill(0), ...tail];
  return all.reduce((acc, g) => (acc << 16n) | BigInt(g), 0n);
}

/** A block of addresses: 10.0.0.0/8, fc00::/7, or one address (/32, /128). */
export interface AddressBlock {
  readonly family: 4 | 6;
  readonly network: bigint;
  readonly prefixLength: number;
  /** Normalised text, e.g. '10.0.0.0/8'. */
  readonly text: string;
}

/** Parse a CIDR or a single address as a block; null on anything malformed or with host bits set. */
export function parseAddressBlock(text: string): AddressBlock | null {
  const slash = text.indexOf('/');
  const ip = parseIp(slash < 0 ? text : text.slice(0, slash));
  if (!ip || (slash >= 0 && text.slice(0, slash).includes('%'))) return null;
  const bits = ip.family === 4 ? 32 : 128;
  const lenText = slash < 0 ? String(bits) : text.slice(slash + 1);
  if (!/^(0|[1-9][0-9]{0,2})$/.test(lenText) || Number(lenText) > bits) return null;
  const prefixLength = Number(lenText);
  if ((ip.value & hostMask(ip.family, prefixLength)) !== 0n) return null;
  const host = slash < 0 ? text : text.slice(0, slash);
  return { family: ip.family, network: ip.value, prefixLength, text: `${host}/${prefixLength}` };
}

function hostMask(family: 4 | 6, prefixLength: number): bigint {
  const bits = BigInt(family === 4 ? 32 : 128);
  return (1n << (bits - BigInt(prefixLength))) - 1n;
}

export function blockContains(block: AddressBlock, ip: ParsedIp): boolean {
  return (
    block.family === ip.family &&
    (ip.value & ~hostMask(ip.family, block.prefixLength)) === block.network
  );
}

/**
 * What kind of address this is, for deciding whether a server-side fetch may connect to it.
 * Only 'public' is reachable by default. IPv4 embedded in IPv6 (::ffff:a.b.c.d, NAT64
 * 64:ff9b::/96, 6to4 2002::/16) is classified as the IPv4 address it reaches.
 */
export type AddressClass =
  | 'public'
  | 'unspecified'
  | 'loopback'
  | 'private'
  | 'shared'
  | 'link-local'
  | 'multicast'
  | 'broadcast'
  | 'documentation'
  | 'reserved';

const V4_CLASSES: [string, AddressClass][] = [
  ['0.0.0.0/8', 'unspecified'], // "this network"; 0.0.0.0 reaches the host itself
  ['10.0.0.0/8', 'private'],
  ['100.64.0.0/10', 'shared'], // carrier-grade NAT (RFC 6598)
  ['127.0.0.0/8', 'loopback'],
  ['169.254.0.0/16', 'link-local'], // cloud metadata services live here
  ['172.16.0.0/12', 'private'],
  ['192.0.0.0/24', 'reserved'], // IETF protocol assignments
  ['192.0.2.0/24', 'documentation'],
  ['192.88.99.0/24', 'reserved'], // 6to4 relay anycast
  ['192.168.0.0/16', 'private'],
  ['198.18.0.0/15', 'reserved'], // benchmarking
  ['198.51.100.0/24', 'documentation'],
  ['203.0.113.0/24', 'documentation'],
  ['224.0.0.0/4', 'multicast'],
  ['255.255.255.255/32', 'broadcast'],
  ['240.0.0.0/4', 'reserved'],
];

const V6_CLASSES: [string, AddressClass][] = [
  ['::/128', 'unspecified'],
  ['::1/128', 'loopback'],
  ['::/96', 'reserved'], // deprecated IPv4-compatible addresses
  ['64:ff9b:1::/48', 'private'], // local-use NAT64
  ['100::/64', 'reserved'], // discard-only
  ['2001:db8::/32', 'documentation'],
  ['2001::/23', 'reserved'], // IETF protocol assignments, Teredo included
  ['fc00::/7', 'private'], // unique local
  ['fe80::/10', 'link-local'],
  ['fec0::/10', 'private'], // deprecated site-local
  ['ff00::/8', 'multicast'],
];

const table = (rows: [string, AddressClass][]) =>
  rows.map(([cidr, cls]) => [parseAddressBlock(cidr) as AddressBlock, cls] as const);
const V4_TABLE = table(V4_CLASSES);
const V6_TABLE = table(V6_CLASSES);
const GLOBAL_UNICAST_V6 = parseAddressBlock('2000::/3') as AddressBlock;

/** The IPv4 address an IPv6 address stands for (mapped, NAT64 well-known prefix, 6to4), if any. */
export function embeddedIpv4(ip: ParsedIp): ParsedIp | null {
  if (ip.family !== 6) return null;
  const v = ip.value;
  if (v >> 32n === 0xffffn) return { family: 4, value: v & 0xffffffffn }; // ::ffff:a.b.c.d
  if (v >> 32n === 0x64ff9b0000000000000000n) return { family: 4, value: v & 0xffffffffn };
  if (v >> 112n === 0x2002n) return { family: 4, value: (v >> 80n) & 0xffffffffn };
  return null;
}

/** Classify an address (see AddressClass). Throws InvalidIpAddress on anything that is not one. */
export function classifyAddress(address: string | ParsedIp): AddressClass {
  const ip = typeof address === 'string' ? parseIp(address) : address;
  if (!ip) throw invalid('InvalidIpAddress', `invalid IP address: ${JSON.stringify(address)}`);
  const v4 = ip.family === 4 ? ip : embeddedIpv4(ip);
  if (v4) return V4_TABLE.find(([block]) => blockContains(block, v4))?.[1] ?? 'public';
  const cls = V6_TABLE.find(([block]) => blockContains(block, ip))?.[1];
  if (cls) return cls;
  // Everything outside 2000::/3 is unassigned.
  return blockContains(GLOBAL_UNICAST_V6, ip) ? 'public' : 'reserved';
}

/** Same address, whatever the spelling ('::ffff:127.0.0.1' and '127.0.0.1' are the same host). */
export function sameAddress(a: string, b: string): boolean {
  const pa = parseIp(a);
  const pb = parseIp(b);
  if (!pa || !pb) return false;
  const na = pa.family === 6 && pa.value >> 32n === 0xffffn ? embeddedIpv4(pa)! : pa;
  const nb = pb.family === 6 && pb.value >> 32n === 0xffffn ? embeddedIpv4(pb)! : pb;
  return na.family === nb.family && na.value === nb.value;
}
