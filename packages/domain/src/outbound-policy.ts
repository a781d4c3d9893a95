import {
  blockContains,
  classifyAddress,
  parseAddressBlock,
  parseIp,
  sameAddress,
  type AddressBlock,
  type ParsedIp,
} from './ip-ranges.js';

/**
 * Which servers minicloud itself may fetch from on a user's behalf (image import by URL).
 * By default only public addresses: never loopback, link-local (cloud metadata), private,
 * shared (CGNAT), multicast, reserved, or an address of this host. An admin allow-list names
 * hosts (any address they resolve to is then fine) or CIDRs (for a LAN image server).
 */
export interface OutboundAllowList {
  /** Lower-case host names without a trailing dot. */
  readonly hosts: readonly string[];
  readonly blocks: readonly AddressBlock[];
}

export const EMPTY_ALLOW_LIST: OutboundAllowList = { hosts: [], blocks: [] };

/** Shorter prefixes would switch the filter off for most of the address space: refused. */
const MIN_PREFIX = { 4: 8, 6: 7 } as const;
const HOST_NAME_RE =
  /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;

const normaliseHost = (host: string) =>
  host
    .toLowerCase()
    .replace(/\.$/, '')
    .replace(/^\[|\]$/g, '');

/**
 * Parse "images.lan,10.0.0.0/8,fd00::/8,192.0.2.7": host names, CIDRs or single addresses,
 * separated by commas. Every bad entry is reported (for the settings check at start).
 */
export function parseOutboundAllowList(text: string): {
  allow: OutboundAllowList;
  problems: string[];
} {
  const hosts: string[] = [];
  const blocks: AddressBlock[] = [];
  const problems: string[] = [];
  for (const raw of text.split(',')) {
    const entry = raw.trim();
    if (entry === '') continue;
    if (entry.includes('/') || parseIp(entry)) {
      const block = parseAddressBlock(entry);
      if (!block) {
        problems.push(`${JSON.stringify(entry)} is not a CIDR (host bits must be zero)`);
      } else if (block.prefixLength < MIN_PREFIX[block.family]) {
        problems.push(
          `${entry} is too broad (at least /${MIN_PREFIX[block.family]}): list the ranges the image server is in`,
        );
      } else blocks.push(block);
      continue;
    }
    const host = normaliseHost(entry);
    if (!HOST_NAME_RE.test(host)) {
      problems.push(`${JSON.stringify(entry)} is neither a host name nor a CIDR`);
    } else hosts.push(host);
  }
  return { allow: { hosts, blocks }, problems };
}

export function isAllowedHostName(allow: OutboundAllowList, hostname: string): boolean {
  return allow.hosts.includes(normaliseHost(hostname));
}

export function isAllowedAddress(allow: OutboundAllowList, address: string | ParsedIp): boolean {
  const ip = typeof address === 'string' ? parseIp(address) : address;
  if (!ip) return false;
  const v4 = ip.family === 6 && ip.value >> 32n === 0xffffn;
  const plain: ParsedIp = v4 ? { family: 4, value: ip.value & 0xffffffffn } : ip;
  return allow.blocks.some((b) => blockContains(b, plain) || blockContains(b, ip));
}

/**
 * Why a connection to `address` is refused (a sentence for the image's stateReason), or null
 * when it may go ahead. `ownAddresses` are the addresses on this host's interfaces.
 */
export function refusedAddressReason(
  address: string,
  allow: OutboundAllowList,
  ownAddresses: readonly string[] = [],
): string | null {
  const ip = parseIp(address);
  if (!ip) return `${JSON.stringify(address)} is not an IP address`;
  const cls = classifyAddress(ip);
  // Never unicast: no allow-list entry makes these a server.
  if (cls === 'unspecified' || cls === 'multicast' || cls === 'broadcast') {
    return `${address} is a ${cls} address`;
  }
  if (isAllowedAddress(allow, ip)) return null;
  if (cls !== 'public') {
    return `${address} is a ${cls} address (allow it with MINICLOUD_IMAGE_IMPORT_ALLOW)`;
  }
  if (ownAddresses.some((own) => sameAddress(own, address))) {
    return `${address} is an address of this host (allow it with MINICLOUD_IMAGE_IMPORT_ALLOW)`;
  }
  return null;
}

/**
 * What is wrong with an http(s) URL to fetch from, before any connection: the scheme,
 * credentials, and a host that is a forbidden literal address or a loopback name. Null when it
 * may be tried (names are checked again against every address they resolve to, at connect).
 */
export function outboundUrlProblem(
  source: string,
  allow: OutboundAllowList,
  ownAddresses: readonly string[] = [],
): string | null {
  let url: URL;
  try {
    url = new URL(source);
  } catch {
    return `${JSON.stringify(source)} is not a valid URL`;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return `only http and https URLs can be fetched, not ${url.protocol.replace(/:$/, '')}`;
  }
  if (url.username !== '' || url.password !== '') {
    return 'the URL must not carry credentials (user:password@)';
  }
  const host = normaliseHost(url.hostname);
  if (host === '') return 'the URL has no host';
  if (parseIp(host)) return refusedAddressReason(host, allow, ownAddresses);
  if (isAllowedHostName(allow, host)) return null;
  if (host === 'localhost' || host.endsWith('.localhost')) {
    return `${host} is a loopback name (allow it with MINICLOUD_IMAGE_IMPORT_ALLOW)`;
  }
  return null;
}
