/**
 * The in-process seed ISO read back by other implementations, each compared with what it reads
 * from genisoimage's ISO of the same documents: isoinfo through Rock Ridge (-R) and through
 * Joliet (-J), blkid (how cloud-init finds the seed: LABEL=cidata, TYPE=iso9660), and Linux's
 * isofs, as cloud-init and the test guest mount it: the host's (`mount -o loop,ro`) where its
 * kernel has isofs, and the test image's kernel booted under QEMU (needs MINICLOUD_TEST_IMAGE).
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { jest } from '@jest/globals';
import { HostCommandError, run } from '@minicloud/host';
import { buildSeedDocuments, SEED_FILES, writeSeedIso, type SeedDocuments } from '../src/index.js';
import { writeSeedIsoWithGenisoimage } from './genisoimage.js';
import { readWithGuestKernel, type GuestListing } from './guest-kernel.js';
import { ECDSA_NO_COMMENT, ED25519, RSA_ODD_COMMENT } from './keys.js';

jest.setTimeout(240_000);

let dir: string;
/** Case name -> [our ISO, genisoimage's ISO]. */
const written = new Map<string, [string, string]>();
beforeAll(async () => {
  dir = await mkdtemp('/tmp/minicloud-test-iso-');
  for (const [name, docs] of cases)
    written.set(name, await writeBoth(name.replaceAll(' ', '-'), docs));
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

const seed = (userData: Buffer | null): SeedDocuments =>
  buildSeedDocuments({
    instanceId: 'i-0123456789abcdef0',
    hostname: 'ip-10-11-0-5',
    publicKeys: [ED25519, ECDSA_NO_COMMENT, RSA_ODD_COMMENT],
    userData,
    mac: '52:54:00:ab:cd:ef',
  });

/** Binary user-data of the largest size EC2 allows: it spans eight sectors. */
const bigUserData = Buffer.from(Array.from({ length: 16 * 1024 }, (_, i) => (i * 7 + 3) % 256));

const cases: [string, SeedDocuments][] = [
  ['binary user-data of 16 KiB', seed(bigUserData)],
  ['empty user-data', seed(null)],
];

function expected(docs: SeedDocuments): Map<string, Buffer> {
  return new Map([
    ['meta-data', Buffer.from(docs.metaData)],
    ['network-config', Buffer.from(docs.networkConfig)],
    ['user-data', docs.userData],
  ]);
}

/** Both ISOs of the same documents: ours and genisoimage's. */
async function writeBoth(name: string, docs: SeedDocuments): Promise<[string, string]> {
  const ours = join(dir, `${name}.iso`);
  const reference = join(dir, `${name}.genisoimage.iso`);
  await writeSeedIso(ours, docs);
  await writeSeedIsoWithGenisoimage(reference, docs);
  return [ours, reference];
}

/**
 * Every file as isoinfo reads it through one extension: names from `isoinfo -f`; size and extent
 * from `isoinfo -l` (the bracketed number, in 2048-byte blocks), the bytes read from the image
 * there (run() decodes stdout as UTF-8, which would mangle binary user-data).
 */
async function isoinfoFiles(iso: string, ext: '-R' | '-J'): Promise<Map<string, Buffer>> {
  const names = (await run('isoinfo', ['-i', iso, ext, '-f'])).stdout.split('\n').filter(Boolean);
  const listing = (await run('isoinfo', ['-i', iso, ext, '-l'])).stdout.split('\n');
  const image = await readFile(iso);
  const files = new Map<string, Buffer>();
  for (const path of names.sort()) {
    const name = path.replace(/^\//, '');
    const line = listing.find((l) => l.trimEnd().endsWith(` ${name}`));
    const m = line && /\s(\d+) \w{3} +\d+ \d{4} \[ *(\d+) +\d+\]/.exec(line);
    if (!m) throw new Error(`${name} not in the ${ext} listing of ${iso}`);
    const [size, extent] = [Number(m[1]), Number(m[2])];
    files.set(name, image.subarray(extent * 2048, extent * 2048 + size));
  }
  return files;
}

/** What `isoinfo -d` says about the volume, less the lines that name the writing program. */
async function isoinfoVolume(iso: string): Promise<string[]> {
  const lines = (await run('isoinfo', ['-d', '-i', iso])).stdout.split('\n');
  return lines.filter((l) => /^(Volume id|Logical block|Joliet|Rock Ridge)/.test(l));
}

async function blkid(iso: string): Promise<Record<string, string>> {
  const out = (await run('blkid', ['-p', '-o', 'export', iso])).stdout;
  const tags = Object.fromEntries(out.split('\n').map((l) => l.split('=', 2) as [string, string]));
  return { LABEL: tags.LABEL!, TYPE: tags.TYPE!, USAGE: tags.USAGE! };
}

/** The files as Linux's isofs reads them: name -> [bytes, mode]; null if the kernel has no isofs. */
async function kernelFiles(iso: string): Promise<Map<string, [Buffer, number]> | null> {
  const mnt = await mkdtemp('/tmp/minicloud-test-isomnt-');
  let mounted = false;
  try {
    try {
      await run('mount', ['-t', 'iso9660', '-o', 'loop,ro', iso, mnt], { timeoutMs: 30_000 });
      mounted = true;
    } catch (e) {
      if (e instanceof HostCommandError && /unknown filesystem type/.test(e.message)) return null;
      throw e;
    }
    const files = new Map<string, [Buffer, number]>();
    for (const name of (await readdir(mnt)).sort()) {
      const path = join(mnt, name);
      files.set(name, [await readFile(path), (await stat(path)).mode]);
    }
    return files;
  } finally {
    if (mounted) await run('umount', [mnt], { timeoutMs: 30_000 });
    await rm(mnt, { recursive: true, force: true });
  }
}

describe.each(cases)('the seed ISO with %s', (name, docs) => {
  let ours: string;
  let reference: string;
  beforeAll(() => {
    [ours, reference] = written.get(name)!;
  });

  it('is a cidata volume with Rock Ridge and Joliet, as genisoimage writes it', async () => {
    const volume = await isoinfoVolume(ours);
    expect(volume).toEqual([
      'Volume id: cidata',
      'Logical block size is: 2048',
      'Joliet with UCS level 3 found',
      'Rock Ridge signatures version 1 found',
    ]);
    expect(volume).toEqual(await isoinfoVolume(reference));
  });

  it('is found by blkid as cloud-init looks for it (LABEL=cidata, TYPE=iso9660)', async () => {
    expect(await blkid(ours)).toEqual({ LABEL: 'cidata', TYPE: 'iso9660', USAGE: 'filesystem' });
    expect(await blkid(ours)).toEqual(await blkid(reference));
  });

  it.each(['-R', '-J'] as const)('reads back byte for byte with isoinfo %s', async (ext) => {
    const files = await isoinfoFiles(ours, ext);
    expect([...files.keys()]).toEqual([...SEED_FILES].sort());
    expect(files).toEqual(expected(docs));
    expect(files).toEqual(await isoinfoFiles(reference, ext));
  });

  it('lists the same Rock Ridge modes and owners as genisoimage', async () => {
    const modes = async (iso: string) =>
      (await run('isoinfo', ['-i', iso, '-R', '-l'])).stdout
        .split('\n')
        .filter((l) => /^[-d]r/.test(l))
        .map((l) => l.split(/\s+/).slice(0, 4).join(' '))
        .sort();
    expect(await modes(ours)).toEqual([
      '-rw-r--r-- 1 0 0',
      '-rw-r--r-- 1 0 0',
      '-rw-r--r-- 1 0 0',
      'dr-xr-xr-x 2 0 0',
      'dr-xr-xr-x 2 0 0',
    ]);
    expect(await modes(ours)).toEqual(await modes(reference));
  });

  it("mounts with the host's kernel (mount -o loop,ro), every file byte for byte", async () => {
    const files = await kernelFiles(ours);
    if (!files) {
      console.warn(
        'skipped: the host kernel has no iso9660 (the test guest kernel reads it below)',
      );
      return;
    }
    expect([...files.keys()]).toEqual([...SEED_FILES].sort());
    for (const [file, bytes] of expected(docs)) {
      expect(files.get(file)![0].equals(bytes)).toBe(true);
      expect(files.get(file)![1] & 0o777).toBe(0o644);
    }
    expect(files).toEqual(await kernelFiles(reference));
  });
});

describe("read by the test guest's kernel (isofs), as Rock Ridge, as Joliet and as plain ISO 9660", () => {
  const image = process.env.MINICLOUD_TEST_IMAGE;
  const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

  it("reads every file byte for byte, exactly as it reads genisoimage's", async () => {
    if (!image || !existsSync(image)) {
      console.warn('skipped: MINICLOUD_TEST_IMAGE (the test guest image) is not there');
      return;
    }
    const isos = cases.flatMap(([name]) => written.get(name)!);
    const read = await readWithGuestKernel(image, isos);
    cases.forEach(([, docs], i) => {
      const [ours, reference] = [read[2 * i]!, read[2 * i + 1]!];
      const files = [...expected(docs)];
      const want: GuestListing = {
        ro: files.map(([n, b]) => `${n} 644 ${sha256(b)}`),
        // Without Rock Ridge, isofs shows modes r-xr-xr-x; plain names are 8.3, lower-cased.
        'ro,norock': files.map(([n, b]) => `${n} 555 ${sha256(b)}`),
        'ro,norock,nojoliet': files.map(
          ([n, b]) => `${n.slice(0, 8).replace('-', '_')} 555 ${sha256(b)}`,
        ),
      };
      expect(ours).toEqual(want);
      expect(ours).toEqual(reference);
    });
  });
});

it('writes the ISO mode 0600 (it carries user-data) and leaves no temp files', async () => {
  const iso = join(dir, 'mode.iso');
  await writeSeedIso(iso, seed(null));
  expect((await stat(iso)).mode & 0o777).toBe(0o600);
  expect((await readdir(dir)).filter((n) => n.includes('.tmp-'))).toEqual([]);
});
