/**
 * ImageStore and overlays against the real qemu-img (qemu-utils), in a temp dir; downloads from
 * a local http server on 127.0.0.1.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { jest } from '@jest/globals';
import { parseOutboundAllowList } from '@minicloud/domain';
import { run } from '@minicloud/host';
import {
  ensureOverlay,
  ImageStore,
  inspectImage,
  removeFile,
  renderQcow2Image,
  type ImportedImage,
} from '../src/index.js';

jest.setTimeout(60_000);

const ID1 = 'ami-00000000000000001';
const ID2 = 'ami-00000000000000002';
const ID3 = 'ami-00000000000000003';
const ID4 = 'ami-00000000000000004';
const ID5 = 'ami-00000000000000005';
const ID6 = 'ami-00000000000000006';

let dir: string;
let src: string;
let imagesDir: string;
let qcow2: string;
let raw: string;
let server: Server;
let baseUrl: string;

const sha256 = async (path: string) =>
  createHash('sha256')
    .update(await readFile(path))
    .digest('hex');
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

beforeAll(async () => {
  dir = await mkdtemp('/tmp/minicloud-test-storage-');
  src = join(dir, 'src');
  imagesDir = join(dir, 'images');
  await mkdir(src);
  qcow2 = join(src, 'base.qcow2');
  raw = join(src, 'base.raw');
  await run('qemu-img', ['create', '-q', '-f', 'qcow2', qcow2, '64M']);
  // Some real data so the file is a few MiB and progress has something to report.
  await run('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0xab 0 4M', qcow2]);
  await run('qemu-img', ['create', '-q', '-f', 'raw', raw, '8M']);
  await writeFile(join(src, 'base.raw'), Buffer.alloc(8 * 1024 * 1024, 7));
  await run('qemu-img', [
    'create',
    '-q',
    '-f',
    'qcow2',
    '-b',
    qcow2,
    '-F',
    'qcow2',
    join(src, 'backed.qcow2'),
  ]);
  await run('qemu-img', [
    'create',
    '-q',
    '-f',
    'qcow2',
    '-o',
    `data_file=${join(src, 'data.raw')}`,
    join(src, 'datafile.qcow2'),
    '16M',
  ]);

  server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const file = join(src, url.pathname.replace(/^\/(chunked|short)\//, '/').slice(1));
    if (url.pathname === '/missing') {
      res.writeHead(404).end('no');
      return;
    }
    stat(file).then(
      (st) => {
        if (url.pathname.startsWith('/short/')) {
          // Promise more than we send, then cut the connection.
          res.writeHead(200, { 'content-length': String(st.size + 1000) });
          res.write(Buffer.alloc(1000));
          setTimeout(() => res.destroy(), 20);
          return;
        }
        const headers: Record<string, string> = url.pathname.startsWith('/chunked/')
          ? {}
          : { 'content-length': String(st.size) };
        res.writeHead(200, headers);
        createReadStream(file).pipe(res);
      },
      () => res.writeHead(404).end(),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server?.close(() => resolve()));
  if (dir) await rm(dir, { recursive: true, force: true });
});

function store() {
  return new ImageStore({
    imagesDir,
    allowLocalSourcesUnder: [src],
    // The test server is on loopback, which imports may reach only when an admin allows it.
    download: { allow: parseOutboundAllowList('127.0.0.1').allow },
  });
}

async function noPartials() {
  const names = await readdir(imagesDir).catch(() => [] as string[]);
  expect(names.filter((n) => n.endsWith('.partial'))).toEqual([]);
}

describe('ImageStore.importImage', () => {
  it('imports a local qcow2, hashing and reporting progress, idempotently', async () => {
    const progress: [number, number | null][] = [];
    const img = await store().importImage({
      imageId: ID1,
      source: qcow2,
      onProgress: (c, t) => progress.push([c, t]),
    });
    const size = (await stat(qcow2)).size;
    expect(img).toEqual<ImportedImage>({
      path: join(imagesDir, `${ID1}.qcow2`),
      format: 'qcow2',
      sizeBytes: size,
      virtualSize: 64 * 1024 * 1024,
      checksumSha256: await sha256(qcow2),
    });
    expect(progress.at(-1)).toEqual([size, size]);
    expect(progress.length).toBeGreaterThan(1);
    expect((await stat(img.path)).mode & 0o777).toBe(0o600); // guest data: root only
    const again = await store().importImage({ imageId: ID1, source: qcow2 });
    expect(again).toEqual(img);
    await noPartials();
  });

  it('imports a raw image as raw', async () => {
    const img = await store().importImage({ imageId: ID2, source: raw, format: 'raw' });
    expect(img.format).toBe('raw');
    expect(img.path).toBe(join(imagesDir, `${ID2}.raw`));
    expect(img.virtualSize).toBe(8 * 1024 * 1024);
    expect((await inspectImage(img.path, 'raw')).format).toBe('raw');
  });

  it('refuses an image with a backing file, leaving nothing behind', async () => {
    await expect(
      store().importImage({ imageId: ID3, source: join(src, 'backed.qcow2') }),
    ).rejects.toMatchObject({
      code: 'InvalidImage',
      message: expect.stringContaining('backing file'),
    });
    expect(await store().findImage(ID3)).toBeNull();
    await noPartials();
  });

  it('refuses an image with an external data file', async () => {
    await expect(
      store().importImage({ imageId: ID3, source: join(src, 'datafile.qcow2') }),
    ).rejects.toMatchObject({
      code: 'InvalidImage',
      message: expect.stringContaining('data file'),
    });
    await noPartials();
  });

  it('refuses a format other than the expected one, and a wrong checksum', async () => {
    await expect(
      store().importImage({ imageId: ID3, source: qcow2, format: 'raw' }),
    ).rejects.toMatchObject({
      code: 'InvalidImage',
    });
    await expect(
      store().importImage({ imageId: ID3, source: qcow2, expectedSha256: '0'.repeat(64) }),
    ).rejects.toMatchObject({ code: 'ChecksumMismatch' });
    await noPartials();
  });

  it('refuses local files outside the allowed directories, also through a symlink', async () => {
    await expect(
      store().importImage({ imageId: ID3, source: '/etc/hostname' }),
    ).rejects.toMatchObject({
      code: 'InvalidParameterValue',
    });
    await symlink('/etc/hostname', join(src, 'sneaky.raw'));
    await expect(
      store().importImage({ imageId: ID3, source: join(src, 'sneaky.raw') }),
    ).rejects.toMatchObject({
      code: 'InvalidParameterValue',
    });
    await noPartials();
  });

  it('downloads over http with progress and the right checksum', async () => {
    const progress: [number, number | null][] = [];
    const size = (await stat(qcow2)).size;
    const img = await store().importImage({
      imageId: ID4,
      source: `${baseUrl}/base.qcow2`,
      onProgress: (c, t) => progress.push([c, t]),
    });
    expect(img.checksumSha256).toBe(await sha256(qcow2));
    expect(img.format).toBe('qcow2');
    expect(img.sizeBytes).toBe(size);
    expect(progress.length).toBeGreaterThan(2);
    expect(progress.length).toBeLessThanOrEqual(102);
    expect(progress.every(([, t]) => t === size)).toBe(true);
    for (let i = 1; i < progress.length; i++)
      expect(progress[i]![0]).toBeGreaterThan(progress[i - 1]![0]);
    expect(progress.at(-1)).toEqual([size, size]);
  });

  it('downloads without content-length (total unknown)', async () => {
    const progress: [number, number | null][] = [];
    const img = await store().importImage({
      imageId: ID5,
      source: `${baseUrl}/chunked/base.raw`,
      onProgress: (c, t) => progress.push([c, t]),
    });
    expect(img.format).toBe('raw');
    expect(img.checksumSha256).toBe(await sha256(raw));
    expect(progress.at(-1)).toEqual([8 * 1024 * 1024, null]);
  });

  it('fails cleanly on HTTP errors, truncated bodies and aborts', async () => {
    await expect(
      store().importImage({ imageId: ID6, source: `${baseUrl}/missing` }),
    ).rejects.toMatchObject({
      code: 'ImageDownloadFailed',
    });
    await expect(
      store().importImage({ imageId: ID6, source: `${baseUrl}/short/base.qcow2` }),
    ).rejects.toMatchObject({
      code: 'ImageDownloadFailed',
    });
    const ac = new AbortController();
    const p = store().importImage({
      imageId: ID6,
      source: `${baseUrl}/chunked/base.raw`,
      signal: ac.signal,
      onProgress: () => ac.abort(),
    });
    await expect(p).rejects.toThrow();
    expect(await store().findImage(ID6)).toBeNull();
    await noPartials();
  });

  it('lists and removes image files', async () => {
    await writeFile(join(imagesDir, `${ID6}.partial`), 'x');
    await writeFile(join(imagesDir, 'unrelated.txt'), 'x');
    const files = await store().listImageFiles();
    expect(files.map((f) => [f.imageId, f.format, f.partial])).toEqual([
      [ID1, 'qcow2', false],
      [ID2, 'raw', false],
      [ID4, 'qcow2', false],
      [ID5, 'raw', false],
      [ID6, null, true],
    ]);
    await store().removeImage(ID6);
    await store().removeImage(ID6);
    await store().removeImage(ID5);
    expect((await store().listImageFiles()).map((f) => f.imageId)).toEqual([ID1, ID2, ID4]);
  });
});

describe('renderQcow2Image against qemu-img', () => {
  // Byte for byte what QEMU 7.2 (Debian 12) writes; qemu-img check and compare hold whatever
  // version is installed.
  it.each([
    ['an overlay on a qcow2 image', 64 * 1024 * 1024, 'qcow2'],
    ['an 8 GiB overlay', 8 * 1024 ** 3, 'qcow2'],
    ['a 16 TiB overlay (4-cluster L1 table)', 16 * 1024 ** 4, 'qcow2'],
    ['an odd size (rounded up to 512)', 512 * 1024 ** 2 + 1, 'qcow2'],
    ['an overlay on a raw image', 1024 ** 3, 'raw'],
    ['a standalone image', 1024 ** 3, null],
  ] as const)('%s', async (_what, size, format) => {
    const backing = format === 'raw' ? raw : format ? qcow2 : null;
    const theirs = join(dir, `qemu-img-${size}-${format}.qcow2`);
    const ours = join(dir, `ours-${size}-${format}.qcow2`);
    await run('qemu-img', [
      'create',
      '-q',
      '-f',
      'qcow2',
      ...(backing ? ['-b', backing, '-F', format!] : []),
      theirs,
      String(size),
    ]);
    await writeFile(
      ours,
      renderQcow2Image({
        virtualSize: size,
        ...(backing ? { backingFile: backing, backingFormat: format! } : {}),
      }),
    );
    expect((await readFile(ours)).equals(await readFile(theirs))).toBe(true);
    await run('qemu-img', ['check', '-q', '-f', 'qcow2', ours]);
    const info = await inspectImage(ours, 'qcow2');
    expect(info).toMatchObject({ backingFile: backing, backingFormat: format, corrupt: false });
    expect(info.virtualSize).toBe(Math.ceil(size / 512) * 512);
    if (backing) {
      // Every byte reads through to the backing image (the guest sees the image).
      const r = await run('qemu-img', ['compare', '-f', 'qcow2', '-F', format!, ours, backing], {
        okExitCodes: [1],
      });
      expect(r.stdout).toMatch(/identical/);
    }
    await rm(ours);
    await rm(theirs);
  });
});

describe('ensureOverlay', () => {
  it('creates an overlay idempotently and refuses another backing file', async () => {
    const backing = join(imagesDir, `${ID1}.qcow2`);
    const path = join(dir, 'disks', 'i-1-root.qcow2');
    await mkdir(join(dir, 'disks'));
    expect(await ensureOverlay({ path, backingPath: backing, backingFormat: 'qcow2' })).toEqual({
      created: true,
      virtualSize: 64 * 1024 * 1024,
    });
    expect(await ensureOverlay({ path, backingPath: backing, backingFormat: 'qcow2' })).toEqual({
      created: false,
      virtualSize: 64 * 1024 * 1024,
    });
    expect((await stat(path)).mode & 0o777).toBe(0o600); // guest data: root only
    const info = await inspectImage(path, 'qcow2');
    expect(info.backingFile).toBe(backing);
    expect(info.backingFormat).toBe('qcow2');
    await expect(
      ensureOverlay({ path, backingPath: join(imagesDir, `${ID2}.raw`), backingFormat: 'raw' }),
    ).rejects.toMatchObject({ code: 'OverlayMismatch' });
    expect((await readdir(join(dir, 'disks'))).sort()).toEqual(['i-1-root.qcow2']); // no temp files
  });

  it('grows to a requested size but never below the image', async () => {
    const backing = join(imagesDir, `${ID2}.raw`);
    const big = await ensureOverlay({
      path: join(dir, 'disks', 'i-2-root.qcow2'),
      backingPath: backing,
      backingFormat: 'raw',
      sizeBytes: 1024 ** 3,
    });
    expect(big).toEqual({ created: true, virtualSize: 1024 ** 3 });
    await expect(
      ensureOverlay({
        path: join(dir, 'disks', 'i-3-root.qcow2'),
        backingPath: backing,
        backingFormat: 'raw',
        sizeBytes: 1024,
      }),
    ).rejects.toMatchObject({ code: 'InvalidParameterValue' });
    await expect(
      ensureOverlay({
        path: join(dir, 'disks', 'i-4-root.qcow2'),
        backingPath: join(dir, 'nope.qcow2'),
        backingFormat: 'qcow2',
      }),
    ).rejects.toMatchObject({ code: 'InvalidParameterValue' });
    expect((await readdir(join(dir, 'disks'))).sort()).toEqual([
      'i-1-root.qcow2',
      'i-2-root.qcow2',
    ]);
  });

  it('survives concurrent calls for the same disk', async () => {
    const backing = join(imagesDir, `${ID1}.qcow2`);
    const path = join(dir, 'disks', 'i-5-root.qcow2');
    const results = await Promise.all(
      Array.from({ length: 4 }, () =>
        ensureOverlay({ path, backingPath: backing, backingFormat: 'qcow2' }),
      ),
    );
    expect(results.filter((r) => r.created).length).toBeGreaterThanOrEqual(1);
    expect((await readdir(join(dir, 'disks'))).filter((n) => n.includes('.tmp-'))).toEqual([]);
  });

  it('measures overlay creation (p50 of 20) and removes files idempotently', async () => {
    const backing = join(imagesDir, `${ID1}.qcow2`);
    const times: number[] = [];
    for (let i = 0; i < 20; i++) {
      const path = join(dir, 'disks', `bench-${i}.qcow2`);
      const t = performance.now();
      await ensureOverlay({
        path,
        backingPath: backing,
        backingFormat: 'qcow2',
        sizeBytes: 8 * 1024 ** 3,
      });
      times.push(performance.now() - t);
      await removeFile(path);
      await removeFile(path);
    }
    const tIdem = performance.now();
    await ensureOverlay({
      path: join(dir, 'disks', 'i-1-root.qcow2'),
      backingPath: backing,
      backingFormat: 'qcow2',
    });
    const idem = performance.now() - tIdem;
    console.log(
      `ensureOverlay (create: backing check + qcow2 write + fsync + link): p50 ${median(times).toFixed(1)} ms, ` +
        `min ${Math.min(...times).toFixed(1)}, max ${Math.max(...times).toFixed(1)}; already exists: ${idem.toFixed(1)} ms`,
    );
  });
});
