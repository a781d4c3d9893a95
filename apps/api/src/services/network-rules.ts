import {
  addressAvailability,
  allocateAddress,
  CloudError,
  countAvailable,
  ec2ReservedAddresses,
  errors,
  intToIp,
  ipToInt,
  isIpv4,
  parseCidr,
  type ParsedCidr,
} from '@minicloud/domain';

/** The pure rules of the VPC address plan, with EC2's error codes. */

export interface AddressRange {
  first: string;
  last: string;
}
interface IntRange {
  firstInt: number;
  lastInt: number;
}

/** RFC 1918 and the shared address space (RFC 6598): what EC2 recommends for VPCs. */
const PRIVATE_RANGES = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10'].map((c) =>
  parseCidr(c),
);

function parseStrict(cidr: string): ParsedCidr {
  let parsed: ParsedCidr;
  try {
    parsed = parseCidr(cidr);
  } catch {
    throw errors.invalidParameter(
      `Value (${cidr}) for parameter cidrBlock is invalid. This is not a valid CIDR block (a.b.c.d/n with no host bits set).`,
    );
  }
  return parsed;
}

function checkBlock(cidr: string, code: 'InvalidVpc.Range' | 'InvalidSubnet.Range'): string {
  const c = parseStrict(cidr);
  if (c.prefixLength < 16 || c.prefixLength > 28) {
    throw new CloudError(
      code,
      `The CIDR '${c.cidr}' is invalid: the block size must be between /16 and /28.`,
    );
  }
  if (
    !PRIVATE_RANGES.some((p) => c.networkInt >= p.networkInt && c.broadcastInt <= p.broadcastInt)
  ) {
    throw new CloudError(
      code,
      `The CIDR '${c.cidr}' is invalid: use a private range (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 or 100.64.0.0/10).`,
    );
  }
  return c.cidr;
}

export const checkVpcCidr = (cidr: string) => checkBlock(cidr, 'InvalidVpc.Range');
export const checkSubnetCidr = (cidr: string) => checkBlock(cidr, 'InvalidSubnet.Range');

export function rangeOfCidr(cidr: string): AddressRange & IntRange {
  const c = parseCidr(cidr);
  return {
    first: c.network,
    last: intToIp(c.broadcastInt),
    firstInt: c.networkInt,
    lastInt: c.broadcastInt,
  };
}

export function overlapping(a: AddressRange, b: AddressRange): boolean {
  return ipToInt(a.first) <= ipToInt(b.last) && ipToInt(b.first) <= ipToInt(a.last);
}

/** EC2's availableIpAddressCount: hosts minus the 5 reserved addresses minus those in use. */
export function availableAddressCount(cidr: string, inUse: number): number {
  return countAvailable(cidr, inUse, { reserved: ec2ReservedAddresses(cidr) });
}

/** `count` free addresses of a subnet, lowest first (fewer when it is full). */
export function allocateSubnetAddresses(
  cidr: string,
  taken: ReadonlySet<string>,
  count: number,
): string[] {
  const used = new Set(taken);
  const reserved = ec2ReservedAddresses(cidr);
  const out: string[] = [];
  while (out.length < count) {
    const ip = allocateAddress(cidr, used, { reserved });
    if (!ip) break;
    used.add(ip);
    out.push(ip);
  }
  return out;
}

/** A private address asked for at launch: inside the subnet, not reserved, not in use. */
export function checkRequestedAddress(
  cidr: string,
  ip: string,
  taken: ReadonlySet<string>,
): string {
  if (!isIpv4(ip)) throw errors.invalidParameter(`'${ip}' is not a valid IPv4 address.`);
  const canonical = intToIp(ipToInt(ip));
  switch (addressAvailability(cidr, canonical, taken, { reserved: ec2ReservedAddresses(cidr) })) {
    case 'available':
      return canonical;
    case 'taken':
      throw new CloudError(
        'InvalidIPAddress.InUse',
        `Address ${canonical} is in use in subnet ${cidr}.`,
        409,
      );
    case 'outside':
      throw errors.invalidParameter(
        `Address ${canonical} does not fall within the subnet's address range ${cidr}.`,
      );
    default:
      throw errors.invalidParameter(
        `Address ${canonical} is reserved in ${cidr} (network, router, DNS, future use, broadcast).`,
      );
  }
}

/** A pool given as a CIDR or as first/last addresses: at most 65536 addresses. */
export function parsePoolRange(input: { cidr: string } | { firstIp: string; lastIp: string }) {
  let first: string;
  let last: string;
  if ('cidr' in input) {
    // Every address of the block: a pool is usually a slice of the uplink's subnet.
    const c = parseStrict(input.cidr);
    first = c.network;
    last = intToIp(c.broadcastInt);
  } else {
    if (!isIpv4(input.firstIp) || !isIpv4(input.lastIp))
      throw errors.invalidParameter('firstIp and lastIp must be IPv4 addresses.');
    first = intToIp(ipToInt(input.firstIp));
    last = intToIp(ipToInt(input.lastIp));
  }
  const size = ipToInt(last) - ipToInt(first) + 1;
  if (size < 1) throw errors.invalidParameter(`The range ${first}-${last} is empty.`);
  if (size > 65536) throw errors.invalidParameter('A pool holds at most 65536 addresses.');
  const block = NEVER_PUBLIC.find((b) => overlapping({ first, last }, b));
  if (block) {
    throw errors.invalidParameter(
      `The range ${first}-${last} includes ${block.what} addresses (${block.cidr}): a public pool ` +
        `holds addresses of the uplink's network that other hosts can reach.`,
    );
  }
  return { first, last, size };
}

/**
 * Blocks no public pool may touch: the host would add such an address to its uplink and announce
 * it (gratuitous ARP), which makes no sense for these and breaks the host (loopback) or the LAN.
 */
const NEVER_PUBLIC = [
  ['0.0.0.0/8', '"this network"'],
  ['127.0.0.0/8', 'loopback'],
  ['169.254.0.0/16', 'link-local'],
  ['224.0.0.0/4', 'multicast'],
  ['240.0.0.0/4', 'reserved (and broadcast)'],
].map(([cidr, what]) => ({ ...rangeOfCidr(cidr!), cidr: cidr!, what: what! }));

/** An address of the host's uplink network that a pool must leave alone, and why. */
export interface HostAddress {
  ip: string;
  /** e.g. "eth0's own address", "the gateway of eth0" */
  what: string;
}

/**
 * Refuse a pool holding one of the host's uplink addresses: its own (the host would lose it to
 * an Elastic IP) or its gateway's (a gratuitous ARP for it would take over the LAN's router).
 */
export function checkPoolAgainstHost(range: AddressRange, host: readonly HostAddress[]): void {
  const hit = host.find((a) => overlapping(range, { first: a.ip, last: a.ip }));
  if (hit) {
    throw errors.invalidParameter(
      `The range ${range.first}-${range.last} includes ${hit.ip}, ${hit.what}: a public pool ` +
        `must leave the uplink's own addresses and its gateway alone.`,
    );
  }
}

/** Parse MINICLOUD_ELASTIC_IP_POOL: 'a.b.c.d/n' or 'a.b.c.d-a.b.c.e'. */
export function parsePoolSetting(text: string) {
  const dash = text.indexOf('-');
  return dash >= 0
    ? parsePoolRange({ firstIp: text.slice(0, dash).trim(), lastIp: text.slice(dash + 1).trim() })
    : parsePoolRange({ cidr: text.trim() });
}

/** The lowest address of [first, last] not in `taken`, or null. */
export function firstFreeInRange(range: AddressRange, taken: ReadonlySet<string>): string | null {
  for (let n = ipToInt(range.first); n <= ipToInt(range.last); n++) {
    const ip = intToIp(n);
    if (!taken.has(ip)) return ip;
  }
  return null;
}
