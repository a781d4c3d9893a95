import { lookup as dnsLookup } from 'node:dns/promises';
import { request, type IncomingMessage } from 'node:http';
import { connect as netConnect, type LookupFunction, type Socket } from 'node:net';
import { networkInterfaces } from 'node:os';
import { connect as tlsConnect } from 'node:tls';
import {
  EMPTY_ALLOW_LIST,
  isAllowedHostName,
  outboundUrlProblem,
  parseIp,
  refusedAddressReason,
  type OutboundAllowList,
} from '@minicloud/domain';
import { StorageError } from './errors.js';

/**
 * HTTP(S) GET for image imports that cannot be turned against the host (SSRF): every hop of a
 * redirect chain is checked, every address a name resolves to is checked before connecting
 * (custom `lookup`), and the address actually connected to is checked again on 'connect'
 * (so neither DNS rebinding nor a literal address slips through). Connect, idle and total
 * timeouts end a stalled download with a clear reason.
 */
export interface DownloadPolicy {
  /** Hosts and CIDRs an admin allows besides public addresses (MINICLOUD_IMAGE_IMPORT_ALLOW). */
  allow?: OutboundAllowList;
  /** Default 10 s. */
  connectTimeoutMs?: number;
  /** No byte for this long (waiting for headers or mid-body) ends the download. Default 30 s. */
  idleTimeoutMs?: number;
  /** The whole download, body included. Default 4 h. */
  totalTimeoutMs?: number;
  /** Default 5. */
  maxRedirects?: number;
  /** Addresses of this host (default: every address on its interfaces, read at each check). */
  ownAddresses?: () => readonly string[];
  /** Trusted CAs (PEM) instead of the system's, e.g. a LAN image server's own CA. */
  ca?: string | Buffer;
  /** Name resolution (tests resolve names to chosen addresses); default the system resolver. */
  resolve?: (hostname: string) => Promise<{ address: string; family: number }[]>;
}

export const DEFAULT_DOWNLOAD_POLICY = {
  connectTimeoutMs: 10_000,
  idleTimeoutMs: 30_000,
  totalTimeoutMs: 4 * 3600_000,
  maxRedirects: 5,
} as const;

export interface Download {
  /** The final URL, after redirects. */
  url: string;
  response: IncomingMessage;
  /** The reason the download was cut (a timeout, a refused address), if it was. */
  failure(): StorageError | null;
  /** Stop the timers and close the connection. */
  close(): void;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

export function hostAddresses(): string[] {
  return Object.values(networkInterfaces())
    .flat()
    .map((a) => a?.address)
    .filter((a): a is string => typeof a === 'string');
}

const forbidden = (message: string) => new StorageError('ImageSourceForbidden', message);
const seconds = (ms: number) => `${Math.round(ms / 100) / 10} s`;

/** GET `url` under `policy`, following (checked) redirects; resolves with the final 200 response. */
export async function openDownload(
  url: string,
  policy: DownloadPolicy = {},
  signal?: AbortSignal,
): Promise<Download> {
  const allow = policy.allow ?? EMPTY_ALLOW_LIST;
  const own = policy.ownAddresses ?? hostAddresses;
  const maxRedirects = policy.maxRedirects ?? DEFAULT_DOWNLOAD_POLICY.maxRedirects;
  let current = url;
  for (let hop = 0; ; hop++) {
    const problem = outboundUrlProblem(current, allow, own());
    if (problem) throw forbidden(`${hop ? `redirect to ${current}` : current}: ${problem}`);
    const download = await getOnce(current, policy, allow, own, signal);
    const { response } = download;
    const location = response.headers.location;
    if (!REDIRECTS.has(response.statusCode ?? 0) || !location) return download;
    download.close();
    if (hop >= maxRedirects) {
      throw new StorageError('ImageDownloadFailed', `${url}: more than ${maxRedirects} redirects`);
    }
    const next = new URL(location, current);
    if (next.protocol === 'http:' && new URL(current).protocol === 'https:') {
      throw forbidden(`${current} redirects from https to http (${next.href})`);
    }
    current = next.href;
  }
}

async function getOnce(
  url: string,
  policy: DownloadPolicy,
  allow: OutboundAllowList,
  own: () => readonly string[],
  signal: AbortSignal | undefined,
): Promise<Download> {
  const u = new URL(url);
  const host = u.hostname.replace(/^\[|\]$/g, '');
  const port = Number(u.port) || (u.protocol === 'https:' ? 443 : 80);
  const byName = isAllowedHostName(allow, host);
  const connectTimeoutMs = policy.connectTimeoutMs ?? DEFAULT_DOWNLOAD_POLICY.connectTimeoutMs;
  const idleTimeoutMs = policy.idleTimeoutMs ?? DEFAULT_DOWNLOAD_POLICY.idleTimeoutMs;
  const totalTimeoutMs = policy.totalTimeoutMs ?? DEFAULT_DOWNLOAD_POLICY.totalTimeoutMs;
  const resolve =
    policy.resolve ?? ((name: string) => dnsLookup(name, { all: true, verbatim: true }));

  let failure: StorageError | null = null;
  let socket: Socket | null = null;
  const fail = (error: StorageError) => {
    failure ??= error;
    socket?.destroy(failure);
  };
  const refusal = (address: string | undefined) =>
    byName ? null : refusedAddressReason(address ?? '?', allow, own());

  // Every address the name resolves to is checked before any connection is tried.
  const lookup: LookupFunction = (hostname, options, callback) => {
    resolve(hostname).then(
      (all) => {
        const usable = all.filter((a) => refusal(a.address) === null);
        if (usable.length === 0) {
          const first = all[0];
          const why = first ? refusal(first.address) : 'no address';
          callback(forbidden(`${hostname} resolves to ${first?.address ?? 'nothing'}: ${why}`), '');
          return;
        }
        if (options.all) callback(null, usable);
        else callback(null, usable[0]!.address, usable[0]!.family);
      },
      (e: Error) => callback(e as NodeJS.ErrnoException, ''),
    );
  };

  const createConnection = (): Socket => {
    const raw = netConnect({ host, port, lookup });
    // Registered first, so it runs before anything is written to the socket.
    raw.once('connect', () => {
      const why = refusal(raw.remoteAddress);
      if (why) fail(forbidden(`${url}: connected to ${raw.remoteAddress}: ${why}`));
    });
    const sock =
      u.protocol === 'https:'
        ? tlsConnect({
            socket: raw,
            servername: parseIp(host) ? undefined : host,
            ALPNProtocols: ['http/1.1'],
            ...(policy.ca ? { ca: policy.ca } : {}),
          })
        : raw;
    socket = sock;
    const connectTimer = setTimeout(
      () =>
        fail(
          new StorageError(
            'ImageDownloadFailed',
            `${url}: no connection to ${u.host} within ${seconds(connectTimeoutMs)}`,
          ),
        ),
      connectTimeoutMs,
    );
    sock.once(u.protocol === 'https:' ? 'secureConnect' : 'connect', () => {
      clearTimeout(connectTimer);
      sock.setTimeout(idleTimeoutMs, () =>
        fail(
          new StorageError(
            'ImageDownloadFailed',
            `${url}: no data for ${seconds(idleTimeoutMs)} (stalled)`,
          ),
        ),
      );
    });
    sock.once('close', () => clearTimeout(connectTimer));
    return sock;
  };

  const totalTimer = setTimeout(
    () =>
      fail(
        new StorageError(
          'ImageDownloadFailed',
          `${url}: not finished within ${seconds(totalTimeoutMs)}`,
        ),
      ),
    totalTimeoutMs,
  );
  const close = () => {
    clearTimeout(totalTimer);
    socket?.destroy();
  };

  try {
    const response = await new Promise<IncomingMessage>((resolveResponse, reject) => {
      const req = request({
        method: 'GET',
        host,
        port,
        path: `${u.pathname}${u.search}`,
        headers: { host: u.host, 'user-agent': 'minicloud-image-import', accept: '*/*' },
        createConnection,
        signal,
      });
      req.once('response', resolveResponse);
      req.once('error', (e) => reject(failure ?? e));
      req.end();
    });
    response.once('close', () => clearTimeout(totalTimer));
    return { url, response, failure: () => failure, close };
  } catch (e) {
    close();
    if (e instanceof StorageError || (e as Error).name === 'AbortError') throw e;
    throw new StorageError('ImageDownloadFailed', `GET ${url} failed: ${(e as Error).message}`, e);
  }
}
