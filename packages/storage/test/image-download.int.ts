/**
 * Image import by URL cannot reach the host or its networks (SSRF), cannot hang, cannot fill the
 * disk: a real HTTP server on 127.0.0.1 plays both the image server and the forbidden target.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { jest } from '@jest/globals';
import { parseOutboundAllowList } from '@minicloud/domain';
import { run } from '@minicloud/host';
import { ImageStore, type DownloadPolicy, type ImageStoreOptions } from '../src/index.js';

jest.setTimeout(60_000);

const ID = 'ami-0000000000000000a';
const MiB = 1024 * 1024;
const RAW = Buffer.alloc(2 * MiB, 7); // a raw image: qemu-img accepts any bytes as raw

let dir: string;
let server: Server;
let port: number;
let base: string;
let tlsServer: Server;
let tlsPort: number;
/** PEM of the self-signed certificate of images.lan (and 127.0.0.1). */
let cert: Buffer;
/** Every path the server was asked for, in order. */
let requests: string[] = [];
const stalled: ServerResponse[] = [];

function handle(req: IncomingMessage, res: ServerResponse) {
  const url = new URL(req.url ?? '/', 'http://x');
  requests.push(url.pathname);
  const to = url.searchParams.get('to');
  switch (url.pathname) {
    case '/image.raw':
      res.writeHead(200, { 'content-length': String(RAW.length) }).end(RAW);
      return;
    case '/secret':
      res.writeHead(200, { 'content-length': '6' }).end('secret');
      return;
    case '/redirect':
      res.writeHead(302, { location: to ?? '/image.raw' }).end();
      return;
    case '/loop':
      res.writeHead(302, { location: '/loop' }).end();
      return;
    case '/stall':
      // Headers and a first piece, then nothing: a server that hangs mid-body.
      res.writeHead(200, { 'content-length': String(RAW.length) });
      res.write(RAW.subarray(0, 64 * 1024));
      stalled.push(res);
      return;
    case '/big':
      res.writeHead(200, { 'content-length': String(8 * MiB) }).end(Buffer.alloc(8 * MiB));
      return;
    case '/big-chunked':
      res.writeHead(200).end(Buffer.alloc(8 * MiB));
      return;
    default:
      res.writeHead(404).end();
  }
}

beforeAll(async () => {
  dir = await mkdtemp('/tmp/minicloud-test-download-');
  server = createServer(handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
  base = `http://127.0.0.1:${port}`;

  await run('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '1',
    '-subj',
    '/CN=images.lan',
    '-addext',
    'subjectAltName=DNS:images.lan,IP:127.0.0.1',
    '-keyout',
    join(dir, 'key.pem'),
    '-out',
    join(dir, 'cert.pem'),
  ]);
  cert = await readFile(join(dir, 'cert.pem'));
  tlsServer = createTlsServer({ key: await readFile(join(dir, 'key.pem')), cert }, handle);
  await new Promise<void>((resolve) => tlsServer.listen(0, '127.0.0.1', resolve));
  tlsPort = (tlsServer.address() as AddressInfo).port;
});

afterAll(async () => {
  for (const res of stalled) res.destroy();
  server.closeAllConnections();
  tlsServer?.closeAllConnections();
  await new Promise<void>((resolve) => server?.close(() => resolve()));
  await new Promise<void>((resolve) => (tlsServer ? tlsServer.close(() => resolve()) : resolve()));
  if (dir) await rm(dir, { recursive: true, force: true });
});

let n = 0;
async function storeWith(download: DownloadPolicy, more: Partial<ImageStoreOptions> = {}) {
  const imagesDir = join(dir, `images-${++n}`);
  await mkdir(imagesDir);
  requests = [];
  return { store: new ImageStore({ imagesDir, ...more, download }), imagesDir };
}

const allow = (text: string) => parseOutboundAllowList(text).allow;
/** A resolver that answers every name with `address` (DNS rebinding, a hostile zone). */
const resolveTo = (address: string) => async () => [
  { address, family: address.includes(':') ? 6 : 4 },
];

async function expectNothingStored(imagesDir: string) {
  expect(await readdir(imagesDir)).toEqual([]);
}

describe('image import by URL: addresses', () => {
  it('refuses a loopback URL by default, before any connection, storing nothing', async () => {
    const { store, imagesDir } = await storeWith({});
    for (const source of [
      `${base}/secret`,
      `http://[::1]:${port}/secret`,
      `http://[::ffff:127.0.0.1]:${port}/secret`,
      `http://2130706433:${port}/secret`,
      `http://localhost:${port}/secret`,
    ]) {
      await expect(store.importImage({ imageId: ID, source })).rejects.toMatchObject({
        code: 'ImageSourceForbidden',
        message: expect.stringMatching(/loopback/),
      });
    }
    expect(requests).toEqual([]);
    await expectNothingStored(imagesDir);
  });

  it('imports the same URL once the allow setting covers 127.0.0.1', async () => {
    const { store } = await storeWith({ allow: allow('127.0.0.1') });
    const img = await store.importImage({ imageId: ID, source: `${base}/image.raw` });
    expect(img).toMatchObject({ format: 'raw', sizeBytes: RAW.length });
    expect(requests).toEqual(['/image.raw']);
  });

  it('refuses a redirect from an allowed server to a forbidden address', async () => {
    // images.lan is allowed by name (and resolves to the test server); 127.0.0.1 itself is not.
    const { store, imagesDir } = await storeWith({
      allow: allow('images.lan'),
      resolve: resolveTo('127.0.0.1'),
    });
    const lan = `http://images.lan:${port}`;
    for (const to of [
      `${base}/secret`,
      `http://localhost:${port}/secret`,
      `http://169.254.169.254/latest/meta-data/`,
      `ftp://example.com/x`,
      `http://user:pw@images.lan:${port}/secret`,
    ]) {
      await expect(
        store.importImage({
          imageId: ID,
          source: `${lan}/redirect?to=${encodeURIComponent(to)}`,
        }),
      ).rejects.toMatchObject({
        code: 'ImageSourceForbidden',
        message: expect.stringContaining('redirect to'),
      });
    }
    expect(requests.every((p) => p === '/redirect')).toBe(true);
    await expectNothingStored(imagesDir);
    // A redirect that stays on the allowed host is followed.
    const ok = await store.importImage({ imageId: ID, source: `${lan}/redirect` });
    expect(ok.sizeBytes).toBe(RAW.length);
  });

  it('limits the number of redirects', async () => {
    const { store, imagesDir } = await storeWith({ allow: allow('127.0.0.1'), maxRedirects: 3 });
    await expect(store.importImage({ imageId: ID, source: `${base}/loop` })).rejects.toMatchObject({
      code: 'ImageDownloadFailed',
      message: expect.stringContaining('more than 3 redirects'),
    });
    expect(requests).toEqual(['/loop', '/loop', '/loop', '/loop']);
    await expectNothingStored(imagesDir);
  });

  it('refuses a name that resolves to a forbidden address (checked at connect time)', async () => {
    for (const address of ['127.0.0.1', '::ffff:127.0.0.1', '10.1.2.3', '169.254.169.254']) {
      const { store, imagesDir } = await storeWith({ resolve: resolveTo(address) });
      await expect(
        store.importImage({ imageId: ID, source: `http://rebind.example:${port}/secret` }),
      ).rejects.toMatchObject({
        code: 'ImageSourceForbidden',
        message: expect.stringContaining(`rebind.example resolves to ${address}`),
      });
      await expectNothingStored(imagesDir);
    }
    expect(requests).toEqual([]);
  });

  it("refuses the host's own addresses, and a name resolving to one, unless allowed", async () => {
    // Pretend 127.0.0.1 is public: the own-address rule must still refuse it.
    const own = () => ['127.0.0.1'];
    const { store } = await storeWith({ ownAddresses: own, resolve: resolveTo('127.0.0.1') });
    await expect(
      store.importImage({ imageId: ID, source: `${base}/secret` }),
    ).rejects.toMatchObject({ code: 'ImageSourceForbidden' });
    expect(requests).toEqual([]);
  });

  it('checks the address actually connected to, not only the URL and the DNS answer', async () => {
    // A "public" address that is this host's own: on a bridge of ours, for this test only.
    const link = `mcssrf${randomBytes(3).toString('hex')}`;
    const address = '192.0.3.77';
    await run('ip', ['link', 'add', link, 'type', 'bridge']);
    const local = createServer(handle);
    try {
      await run('ip', ['addr', 'add', `${address}/32`, 'dev', link]);
      await run('ip', ['link', 'set', link, 'up']);
      await new Promise<void>((resolve) => local.listen(0, address, resolve));
      const localPort = (local.address() as AddressInfo).port;
      // The host's addresses change between the URL check and the connection (a time-of-check
      // gap): only the check on the connected socket can catch it.
      let calls = 0;
      const { store, imagesDir } = await storeWith({
        ownAddresses: () => (calls++ === 0 ? [] : [address]),
      });
      await expect(
        store.importImage({ imageId: ID, source: `http://${address}:${localPort}/secret` }),
      ).rejects.toMatchObject({
        code: 'ImageSourceForbidden',
        message: expect.stringContaining(
          `connected to ${address}: ${address} is an address of this host`,
        ),
      });
      expect(calls).toBe(2);
      expect(requests).toEqual([]);
      await expectNothingStored(imagesDir);
    } finally {
      local.closeAllConnections();
      await new Promise<void>((resolve) =>
        local.listening ? local.close(() => resolve()) : resolve(),
      );
      await run('ip', ['link', 'del', link]);
    }
  });

  it('refuses credentials in the URL and non-http schemes', async () => {
    const { store } = await storeWith({ allow: allow('127.0.0.1') });
    await expect(
      store.importImage({ imageId: ID, source: `http://u:p@127.0.0.1:${port}/image.raw` }),
    ).rejects.toMatchObject({
      code: 'ImageSourceForbidden',
      message: expect.stringMatching(/credentials/),
    });
    expect(requests).toEqual([]);
  });
});

describe('image import by URL: https', () => {
  const lan = () => `https://images.lan:${tlsPort}`;
  const policy = { allow: allow('images.lan'), resolve: resolveTo('127.0.0.1') };

  it('downloads over TLS, verifying the certificate for the name', async () => {
    const { store } = await storeWith({ ...policy, ca: cert });
    const img = await store.importImage({ imageId: ID, source: `${lan()}/image.raw` });
    expect(img.sizeBytes).toBe(RAW.length);
    const { store: untrusting, imagesDir } = await storeWith(policy);
    await expect(
      untrusting.importImage({ imageId: ID, source: `${lan()}/image.raw` }),
    ).rejects.toMatchObject({
      code: 'ImageDownloadFailed',
      message: expect.stringMatching(/self[- ]signed/),
    });
    await expectNothingStored(imagesDir);
  });

  it('refuses a redirect from https to http, and a forbidden address over https', async () => {
    const { store, imagesDir } = await storeWith({ ...policy, ca: cert });
    const to = encodeURIComponent(`http://images.lan:${port}/image.raw`);
    await expect(
      store.importImage({ imageId: ID, source: `${lan()}/redirect?to=${to}` }),
    ).rejects.toMatchObject({
      code: 'ImageSourceForbidden',
      message: expect.stringContaining('redirects from https to http'),
    });
    const { store: strict } = await storeWith({ resolve: resolveTo('127.0.0.1'), ca: cert });
    await expect(
      strict.importImage({ imageId: ID, source: `${lan()}/image.raw` }),
    ).rejects.toMatchObject({
      code: 'ImageSourceForbidden',
      message: expect.stringContaining('images.lan resolves to 127.0.0.1'),
    });
    expect(requests).toEqual([]);
    await expectNothingStored(imagesDir);
  });
});

describe('image import by URL: time and size', () => {
  it('ends a download that stalls mid-body within the idle timeout, with a clear reason', async () => {
    const { store, imagesDir } = await storeWith({ allow: allow('127.0.0.1'), idleTimeoutMs: 500 });
    const t = performance.now();
    await expect(store.importImage({ imageId: ID, source: `${base}/stall` })).rejects.toMatchObject(
      { code: 'ImageDownloadFailed', message: expect.stringContaining('no data for 0.5 s') },
    );
    // Loose bound (a loaded machine): without the idle timeout this never returns.
    expect(performance.now() - t).toBeLessThan(15_000);
    await expectNothingStored(imagesDir);
  });

  it('refuses a body larger than the cap: up front by Content-Length, and while streaming', async () => {
    const { store, imagesDir } = await storeWith(
      { allow: allow('127.0.0.1') },
      { maxImageBytes: 4 * MiB },
    );
    for (const path of ['/big', '/big-chunked']) {
      await expect(
        store.importImage({ imageId: ID, source: `${base}${path}` }),
      ).rejects.toMatchObject({
        code: 'ImageTooLarge',
        message: expect.stringMatching(/limit of 4194304 bytes/),
      });
    }
    await expectNothingStored(imagesDir);
  });

  it('refuses an image larger than the free space of the images directory', async () => {
    const mnt = join(dir, 'minicloud-test-tmpfs');
    await mkdir(mnt);
    await run('mount', ['-t', 'tmpfs', '-o', 'size=6m', 'minicloud-test', mnt]);
    try {
      const store = new ImageStore({
        imagesDir: mnt,
        keepFreeBytes: MiB,
        download: { allow: allow('127.0.0.1') },
      });
      requests = [];
      for (const path of ['/big', '/big-chunked']) {
        await expect(
          store.importImage({ imageId: ID, source: `${base}${path}` }),
        ).rejects.toMatchObject({
          code: 'InsufficientImageCapacity',
          message: expect.stringContaining('bytes free (keeping 1048576 in reserve)'),
        });
      }
      expect(await readdir(mnt)).toEqual([]);
      // What fits is fine.
      const ok = await store.importImage({ imageId: ID, source: `${base}/image.raw` });
      expect(ok.sizeBytes).toBe(RAW.length);
    } finally {
      await run('umount', [mnt]);
    }
  });
});
