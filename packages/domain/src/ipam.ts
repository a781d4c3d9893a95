import { invalid } from './validation.js';

/**
 * Pure IPv4 helpers and address allocation. No I/O: the database is the source of truth for
 * which addresses are taken; these functions only compute.
 */

const OCTET = '(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])';
const IPV4_RE = new RegExp(`^${OCTET}(?:\\.${OCTET}){3}$`);

export interface ParsedCidr {
  /** Normalised text, e.g. '10.11.0.0/24'. */
  readonly cidr: string;
  /** Network address, e.g. '10.11.0.0'. */
  readonly network: string;
  readonly prefixLength: number;
  /** Dotted netmask, e.g. '255.255.255.0'. */
  readonly netmask: string;
  /** Last address of the block (the broadcast address for prefixes up to /30). */
  readonly broadcast: string;
  readonly networkInt: number;
  readonly broadcastInt: number;
  /** Number of addresses in the block, 2^(32 - prefixLength). */
  readonly size: number;
  /** First and last addresses a host may use (network and broadcast excluded up to /30). */
  readonly firstHost: string;
  readonly lastHost: string;
  readonly firstHostInt: number;
  readonly lastHostInt: number;
  /** lastHost - firstHost + 1. */
  readonly hostCount: number;
}

export type CidrInput = string | ParsedCidr;

/** True for a dotted-quad IPv4 address without leading zeros ('010.0.0.1' is refused). */
export function isIpv4(value: unknown): value is string {
  return typeof value === 'string' && IPV4_RE.test(value);
}

export function assertIpv4(value: string, what = 'IP address'): string {
  if (!isIpv4(value))
    throw invalid('InvalidIpAddress', `invalid ${what}: ${JSON.stringify(value)}`);
  return value;
}

export function ipToInt(ip: string): number {
  assertIpv4(ip);
  const [a, b, c, d] = ip.split('.').map(Number) as [number, number, number, number];
  return ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;
}

export function intToIp(value: number): string {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    throw invalid('InvalidIpAddress', `not a 32-bit unsigned integer: ${value}`);
  }
  return [value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255].join('.');
}

export function prefixToNetmaskInt(prefixLength: number): number {
  return prefixLength === 0 ? 0 : (0xffffffff << (32 - prefixLength)) >>> 0;
}

export interface ParseCidrOptions {
  /** Accept '10.0.0.5/24' and normalise it to '10.0.0.0/24' (default: refuse host bits). */
  allowHostBits?: boolean;
}

/** Parse 'a.b.c.d/n'. Throws NetworkValidationError (reason InvalidCidr) on anything malformed. */
export function parseCidr(input: CidrInput, options: ParseCidrOptions = {}): ParsedCidr {
  if (typeof input !== 'string') return input;
  const m = /^([0-9.]+)\/(3[0-2]|[12]?[0-9])$/.exec(input);
  if (!m || !isIpv4(m[1])) {
    throw invalid(
      'InvalidCidr',
      `invalid CIDR block ${JSON.stringify(input)} (expected a.b.c.d/n)`,
    );
  }
  const prefixLength = Number(m[2]);
  const mask = prefixToNetmaskInt(prefixLength);
  const addr = ipToInt(m[1]);
  const networkInt = (addr & mask) >>> 0;
  if (networkInt !== addr && !options.allowHostBits) {
    throw invalid(
      'InvalidCidr',
      `invalid CIDR block ${input}: host bits are set (did you mean ${intToIp(networkInt)}/${prefixLength}?)`,
    );
  }
  const size = 2 ** (32 - prefixLength);
  const broadcastInt = networkInt + size - 1;
  const firstHostInt = prefixLength <= 30 ? networkInt + 1 : networkInt;
  const lastHostInt = prefixLength <= 30 ? broadcastInt - 1 : broadcastInt;
  return {
    cidr: `${intToIp(networkInt)}/${prefixLength}`,
    network: intToIp(networkInt),
    prefixLength,
    netmask: intToIp(mask),
    broadcast: intToIp(broadcastInt),
    networkInt,
    broadcastInt,
    size,
    firstHost: intToIp(firstHostInt),
    lastHost: intToIp(lastHostInt),
    firstHostInt,
    lastHostInt,
    hostCount: lastHostInt - firstHostInt + 1,
  };
}

export function isCidr(value: unknown): value is string {
  if (typeof value !== 'string') return false;
  try {
    parseCidr(value);
    return true;
  } catch {
    return false;
  }
}

/** True when ip lies inside the block (network and broadcast addresses included). */
export function cidrContains(cidr: CidrInput, ip: string): boolean {
  const c = parseCidr(cidr);
  const n = ipToInt(ip);
  return n >= c.networkInt && n <= c.broadcastInt;
}

/** True when block `inner` lies entirely inside block `outer` (a subnet inside its VPC). */
export function cidrContainsCidr(outer: CidrInput, inner: CidrInput): boolean {
  const o = parseCidr(outer);
  const i = parseCidr(inner);
  return i.networkInt >= o.networkInt && i.broadcastInt <= o.broadcastInt;
}

export function cidrsOverlap(a: CidrInput, b: CidrInput): boolean {
  const x = parseCidr(a);
  const y = parseCidr(b);
  return x.networkInt <= y.broadcastInt && y.networkInt <= x.broadcastInt;
}

/** The first `count` host addresses of the block (the first one is the usual gateway). */
export function firstUsableAddresses(cidr: CidrInput, count: number): string[] {
  const c = parseCidr(cidr);
  if (!Number.isInteger(count) || count < 0) {
    throw invalid('InvalidNetworkSpec', `count must be a non-negative integer, got ${count}`);
  }
  const out: string[] = [];
  for (let n = c.firstHostInt; n <= c.lastHostInt && out.length < count; n++) out.push(intToIp(n));
  return out;
}

/** The conventional gateway: the first host address ('10.0.0.1' in '10.0.0.0/24'). */
export function defaultGateway(cidr: CidrInput): string {
  const c = parseCidr(cidr);
  if (c.prefixLength > 30) {
    throw invalid('InvalidCidr', `${c.cidr} is too small for a gateway and guests (at most /30)`);
  }
  return c.firstHost;
}

/**
 * The addresses AWS reserves in every subnet: network (.0), VPC router (.1), DNS (.2), future
 * use (.3) and broadcast (last). Blocks smaller than /28 (AWS's minimum) get the subset that
 * fits, without duplicates.
 */
export function ec2ReservedAddresses(cidr: CidrInput): string[] {
  const c = parseCidr(cidr);
  const ints = [0, 1, 2, 3]
    .map((o) => c.networkInt + o)
    .filter((n) => n <= c.broadcastInt)
    .concat(c.broadcastInt);
  return [...new Set(ints)].map(intToIp);
}

export interface AllocateOptions {
  /** Addresses never handed out (e.g. the gateway, or ec2ReservedAddresses(cidr)). */
  reserved?: readonly string[];
  /** Tried first; when it is not assignable the normal lowest-free scan runs instead. */
  preferred?: string;
}

export type AddressAvailability =
  | 'available'
  | 'outside' /* not inside the block */
  | 'network' /* the network address */
  | 'broadcast' /* the broadcast address */
  | 'reserved'
  | 'taken';

/** Why (or whether) ip can be given to a new interface in this block. */
export function addressAvailability(
  cidr: CidrInput,
  ip: string,
  taken: ReadonlySet<string>,
  options: Pick<AllocateOptions, 'reserved'> = {},
): AddressAvailability {
  const c = parseCidr(cidr);
  const n = ipToInt(ip);
  if (n < c.networkInt || n > c.broadcastInt) return 'outside';
  if (n < c.firstHostInt) return 'network';
  if (n > c.lastHostInt) return 'broadcast';
  if (options.reserved?.includes(ip)) return 'reserved';
  if (taken.has(ip)) return 'taken';
  return 'available';
}

/**
 * The lowest free host address of the block, or null when the block is full. `taken` holds
 * addresses in canonical dotted form (as this module produces them).
 */
export function allocateAddress(
  cidr: CidrInput,
  taken: ReadonlySet<string>,
  options: AllocateOptions = {},
): string | null {
  const c = parseCidr(cidr);
  for (const r of options.reserved ?? []) assertIpv4(r, 'reserved address');
  const reserved = new Set(options.reserved ?? []);
  if (options.preferred !== undefined) {
    assertIpv4(options.preferred, 'preferred address');
    if (addressAvailability(c, options.preferred, taken, options) === 'available') {
      return options.preferred;
    }
  }
  for (let n = c.firstHostInt; n <= c.lastHostInt; n++) {
    const ip = intToIp(n);
    if (!reserved.has(ip) && !taken.has(ip)) return ip;
  }
  return null;
}

/**
 * How many addresses are still free: host addresses, minus the distinct reserved host addresses
 * inside the block, minus takenCount (never below zero). With
 * `reserved: ec2ReservedAddresses(cidr)` this is EC2's AvailableIpAddressCount.
 */
export function countAvailable(
  cidr: CidrInput,
  takenCount: number,
  options: Pick<AllocateOptions, 'reserved'> = {},
): number {
  const c = parseCidr(cidr);
  if (!Number.isInteger(takenCount) || takenCount < 0) {
    throw invalid(
      'InvalidNetworkSpec',
      `takenCount must be a non-negative integer, got ${takenCount}`,
    );
  }
  let reservedHosts = 0;
  for (const r of new Set(options.reserved ?? [])) {
    const n = ipToInt(r);
    if (n >= c.firstHostInt && n <= c.lastHostInt) reservedHosts++;
  }
  return Math.max(0, c.hostCount - reservedHosts - takenCount);
}
