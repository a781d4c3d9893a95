/**
 * The image.import job against a real SQLite database, a real image store and a real HTTP
 * server on 127.0.0.1: a forbidden source or a stalled server ends in `failed` with a clear
 * stateReason, nothing stored, and the image's lock released.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jest } from '@jest/globals';
import type { Db } from '@minicloud/db';
import { KeyedLock, newId, parseOutboundAllowList } from '@minicloud/domain';
import { UnrecoverableError, type Job } from '@minicloud/queue';
import { ImageStore, type DownloadPolicy } from '@minicloud/storage';
import { freshDatabase } from '@minicloud/testkit/api-harness';
import type { WorkerDeps } from '../src/context.js';
import { importImage } from '../src/jobs/image-import.job.js';

jest.setTimeout(60_000);

const RAW = Buffer.alloc(1024 * 1024, 3);
let dir: string;
let db: Db;
let server: Server;
let base: string;
let requests: string[] = [];
const stalled: ServerResponse[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'minicloud-test-image-job-'));
  db = await freshDatabase(dir);
  server = createServer((req, res) => {
    requests.push(req.url ?? '');
    if (req.url === '/stall') {
      res.writeHead(200, { 'content-length': String(RAW.length) });
      res.write(RAW.subarray(0, 1000));
      stalled.push(res);
      return;
    }
    res.writeHead(200, { 'content-length': String(RAW.length) }).end(RAW);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  for (const res of stalled) res.destroy();
  server.closeAllConnections();
  await new Promise<void>((resolve) => server?.close(() => resolve()));
  await db?.$disconnect();
  if (dir) await rm(dir, { recursive: true, force: true });
});

let n = 0;
async function setUp(source: string, download: DownloadPolicy) {
  const imagesDir = join(dir, `images-${++n}`);
  const deps = {
    db,
    images: new ImageStore({ imagesDir, download }),
    locks: new KeyedLock(),
    log: () => {},
  } as unknown as WorkerDeps;
  const id = newId('image');
  await db.image.create({ data: { id, name: `img-${n}`, source, state: 'pending' } });
  requests = [];
  return { deps, id, imagesDir };
}

/** A BullMQ job on its first of three attempts, or on its last. */
const job = (attemptsMade: number) => ({ attemptsMade, opts: { attempts: 3 } }) as unknown as Job;

describe('image.import job', () => {
  it('fails a loopback source at once (no retry), with the reason, storing nothing', async () => {
    // As if the row came from before the API check, or from another API: the worker decides.
    const { deps, id, imagesDir } = await setUp(`${base}/secret`, {});
    await expect(importImage(deps, id, job(0))).rejects.toBeInstanceOf(UnrecoverableError);
    const image = await db.image.findUniqueOrThrow({ where: { id } });
    expect(image.state).toBe('failed');
    expect(image.stateReason).toMatch(/127\.0\.0\.1 is a loopback address/);
    expect(requests).toEqual([]);
    expect(await readdir(imagesDir)).toEqual([]);
    expect(deps.locks.isHeld(id)).toBe(false);
  });

  it('imports the same source when the allow setting covers 127.0.0.1', async () => {
    const { deps, id } = await setUp(`${base}/image.raw`, {
      allow: parseOutboundAllowList('127.0.0.1').allow,
    });
    await importImage(deps, id, job(0));
    const image = await db.image.findUniqueOrThrow({ where: { id } });
    expect(image).toMatchObject({ state: 'available', format: 'raw' });
    expect(Number(image.sizeBytes)).toBe(RAW.length);
  });

  it('ends a stalled download within the idle timeout and frees the slot', async () => {
    const { deps, id, imagesDir } = await setUp(`${base}/stall`, {
      allow: parseOutboundAllowList('127.0.0.1').allow,
      idleTimeoutMs: 500,
    });
    const t = performance.now();
    // Not the last attempt: a retry may help, so the image stays pending.
    await expect(importImage(deps, id, job(0))).rejects.toMatchObject({
      code: 'ImageDownloadFailed',
    });
    expect((await db.image.findUniqueOrThrow({ where: { id } })).state).toBe('pending');
    // The last attempt marks it failed, saying why.
    await expect(importImage(deps, id, job(2))).rejects.toBeInstanceOf(UnrecoverableError);
    expect(performance.now() - t).toBeLessThan(20_000); // loose: without the fix it never ends
    const image = await db.image.findUniqueOrThrow({ where: { id } });
    expect(image.state).toBe('failed');
    expect(image.stateReason).toMatch(/no data for 0\.5 s \(stalled\)/);
    expect(await readdir(imagesDir)).toEqual([]);
    expect(deps.locks.isHeld(id)).toBe(false);
  });
});
