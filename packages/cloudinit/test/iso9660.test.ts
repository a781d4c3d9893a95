/**
 * The ISO 9660 builder, read back structure by structure (ECMA-119, SUSP/RRIP 1.09, Joliet)
 * with a small reader written here from the specifications.
 */
import { buildIso, buildSeedDocuments, buildSeedIso } from '../src/index.js';
import { SECTOR } from '../src/iso9660.js';

const DATE = new Date('2024-05-06T07:08:09.120Z');

interface Rec {
  length: number;
  extent: number;
  size: number;
  isDir: boolean;
  id: Buffer;
  date: Buffer;
  /** SUSP entries by signature (the body, after the 4-byte header). */
  su: Map<string, Buffer>;
  /** Where the record starts in the image. */
  at: number;
}

function both32(b: Buffer, at: number): number {
  const le = b.readUInt32LE(at);
  expect(b.readUInt32BE(at + 4)).toBe(le);
  return le;
}

function both16(b: Buffer, at: number): number {
  const le = b.readUInt16LE(at);
  expect(b.readUInt16BE(at + 2)).toBe(le);
  return le;
}

function suEntries(area: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (let i = 0; i + 4 <= area.length && area[i + 2]! >= 4; i += area[i + 2]!) {
    const sig = area.toString('ascii', i, i + 2);
    expect(area[i + 3]).toBe(1); // entry version
    out.set(sig, area.subarray(i + 4, i + area[i + 2]!));
  }
  return out;
}

/** The records of a directory extent; records never cross a sector boundary. */
function readDir(iso: Buffer, extent: number, size: number): Rec[] {
  const recs: Rec[] = [];
  for (let at = extent * SECTOR; at < extent * SECTOR + size;) {
    const length = iso[at]!;
    if (length === 0) {
      at = (Math.floor(at / SECTOR) + 1) * SECTOR; // the rest of this sector is padding
      continue;
    }
    expect(Math.floor(at / SECTOR)).toBe(Math.floor((at + length - 1) / SECTOR));
    expect(length % 2).toBe(0);
    const r = iso.subarray(at, at + length);
    const idLen = r[32]!;
    const suStart = 33 + idLen + (idLen % 2 === 0 ? 1 : 0);
    expect(both16(r, 28)).toBe(1); // volume sequence number
    recs.push({
      length,
      extent: both32(r, 2),
      size: both32(r, 10),
      isDir: (r[25]! & 2) !== 0,
      id: Buffer.from(r.subarray(33, 33 + idLen)),
      date: Buffer.from(r.subarray(18, 25)),
      su: suEntries(r.subarray(suStart)),
      at,
    });
    at += length;
  }
  return recs;
}

function descriptor(iso: Buffer, sector: number): Buffer {
  return iso.subarray(sector * SECTOR, (sector + 1) * SECTOR);
}

function rootOf(d: Buffer): { extent: number; size: number } {
  return { extent: both32(d, 156 + 2), size: both32(d, 156 + 10) };
}

/** name -> bytes, as a Rock Ridge reader sees the primary tree. */
function rockRidgeFiles(iso: Buffer): Map<string, Buffer> {
  const root = rootOf(descriptor(iso, 16));
  const files = new Map<string, Buffer>();
  for (const r of readDir(iso, root.extent, root.size).slice(2)) {
    const nm = r.su.get('NM')!;
    expect(nm[0]).toBe(0); // flags: the whole name, in this entry
    files.set(nm.toString('ascii', 1), iso.subarray(r.extent * SECTOR, r.extent * SECTOR + r.size));
  }
  return files;
}

/** name -> bytes, as a Joliet reader sees the supplementary tree. */
function jolietFiles(iso: Buffer): Map<string, Buffer> {
  const root = rootOf(descriptor(iso, 17));
  const files = new Map<string, Buffer>();
  for (const r of readDir(iso, root.extent, root.size).slice(2)) {
    const name = Buffer.from(r.id).swap16().toString('utf16le');
    files.set(name, iso.subarray(r.extent * SECTOR, r.extent * SECTOR + r.size));
  }
  return files;
}

const docs = buildSeedDocuments({
  instanceId: 'i-0123456789abcdef0',
  hostname: 'ip-10-11-0-5',
  publicKeys: [],
  userData: null,
  mac: '52:54:00:ab:cd:ef',
});

describe('buildIso', () => {
  const iso = buildSeedIso(docs, DATE);

  it('has the primary descriptor at 16 * 2048, the Joliet one after it, then the terminator', () => {
    expect(iso.length % SECTOR).toBe(0);
    expect(iso.subarray(0, 16 * SECTOR).every((b) => b === 0)).toBe(true); // system area

    const pvd = descriptor(iso, 16);
    expect(pvd.toString('latin1', 0, 7)).toBe('\x01CD001\x01');
    expect(pvd.toString('ascii', 40, 72)).toBe('cidata'.padEnd(32));
    expect(both32(pvd, 80)).toBe(iso.length / SECTOR); // volume space size
    expect(both16(pvd, 120)).toBe(1); // volume set size
    expect(both16(pvd, 124)).toBe(1); // volume sequence number
    expect(both16(pvd, 128)).toBe(SECTOR);
    expect(pvd.toString('ascii', 813, 829)).toBe('2024050607080912'); // creation
    expect(pvd[829]).toBe(0); // UTC
    expect(pvd.toString('ascii', 847, 863)).toBe('0'.repeat(16)); // no expiration
    expect(pvd[881]).toBe(1); // file structure version

    const svd = descriptor(iso, 17);
    expect(svd.toString('latin1', 0, 7)).toBe('\x02CD001\x01');
    expect(svd.toString('ascii', 88, 91)).toBe('%/E'); // Joliet, UCS-2 level 3
    expect(Buffer.from(svd.subarray(40, 72)).swap16().toString('utf16le')).toBe(
      'cidata'.padEnd(16),
    );
    expect(both32(svd, 80)).toBe(iso.length / SECTOR);

    expect(descriptor(iso, 18).toString('latin1', 0, 7)).toBe('\xffCD001\x01');
  });

  it('writes L and M path tables holding only the root, for both trees', () => {
    for (const sector of [16, 17]) {
      const d = descriptor(iso, sector);
      const size = both32(d, 132);
      expect(size).toBe(10);
      const l = iso.subarray(d.readUInt32LE(140) * SECTOR);
      const m = iso.subarray(d.readUInt32BE(148) * SECTOR);
      const { extent } = rootOf(d);
      expect([l[0], l.readUInt32LE(2), l.readUInt16LE(6), l[8]]).toEqual([1, extent, 1, 0]);
      expect([m[0], m.readUInt32BE(2), m.readUInt16BE(6), m[8]]).toEqual([1, extent, 1, 0]);
    }
  });

  it('lists . and .. then the files by 8.3 name, each with its own name in Rock Ridge NM', () => {
    const root = rootOf(descriptor(iso, 16));
    expect(root.size).toBe(SECTOR);
    const recs = readDir(iso, root.extent, root.size);
    expect(recs.map((r) => r.id.toString('latin1'))).toEqual([
      '\0',
      '\x01',
      'META_DAT.;1',
      'NETWORK_.;1',
      'USER_DAT.;1',
    ]);
    const [dot, dotdot, ...files] = recs;
    for (const d of [dot!, dotdot!]) {
      expect(d).toMatchObject({ isDir: true, extent: root.extent, size: SECTOR });
    }
    expect([...rockRidgeFiles(iso).keys()]).toEqual(['meta-data', 'network-config', 'user-data']);
    expect(files.every((f) => !f.isDir)).toBe(true);
    expect(dot!.date).toEqual(Buffer.of(124, 5, 6, 7, 8, 9, 0));
  });

  it("marks Rock Ridge in the root's . record: SP first, then a CE to the RRIP_1991A ER", () => {
    const root = rootOf(descriptor(iso, 16));
    const dot = readDir(iso, root.extent, root.size)[0]!;
    expect(iso.toString('ascii', dot.at + 34, dot.at + 36)).toBe('SP'); // first SU entry
    expect(dot.su.get('SP')).toEqual(Buffer.of(0xbe, 0xef, 0));
    const ceBody = dot.su.get('CE')!;
    const [block, offset, length] = [both32(ceBody, 0), both32(ceBody, 8), both32(ceBody, 16)];
    const er = suEntries(iso.subarray(block * SECTOR + offset, block * SECTOR + offset + length));
    const body = er.get('ER')!;
    const [idLen, desLen, srcLen, version] = body;
    expect(body.toString('ascii', 4, 4 + idLen!)).toBe('RRIP_1991A');
    expect(4 + idLen! + desLen! + srcLen!).toBe(body.length);
    expect(version).toBe(1);
  });

  it('gives POSIX modes, links and times: the root r-xr-xr-x, files rw-r--r--, owned by root', () => {
    const root = rootOf(descriptor(iso, 16));
    const [dot, dotdot, ...files] = readDir(iso, root.extent, root.size);
    const px = (r: Rec) => {
      const b = r.su.get('PX')!;
      return [both32(b, 0), both32(b, 8), both32(b, 16), both32(b, 24)];
    };
    expect(px(dot!)).toEqual([0o040555, 2, 0, 0]);
    expect(px(dotdot!)).toEqual([0o040555, 2, 0, 0]);
    for (const f of files) {
      expect(px(f)).toEqual([0o100644, 1, 0, 0]);
      expect(f.su.get('RR')).toEqual(Buffer.of(0x89)); // PX, NM, TF present
      const date = Buffer.of(124, 5, 6, 7, 8, 9, 0);
      expect(f.su.get('TF')).toEqual(Buffer.concat([Buffer.of(0x0e), date, date, date]));
    }
  });

  it('lists the same files under their own names in the Joliet tree (UCS-2, no version)', () => {
    const root = rootOf(descriptor(iso, 17));
    expect(root.extent).not.toBe(rootOf(descriptor(iso, 16)).extent);
    const recs = readDir(iso, root.extent, root.size);
    expect(recs[0]!.id).toEqual(Buffer.of(0));
    expect(recs[1]!.id).toEqual(Buffer.of(1));
    expect(recs.every((r) => r.su.size === 0)).toBe(true);
    expect(recs[2]!.id).toEqual(Buffer.from('\0m\0e\0t\0a\0-\0d\0a\0t\0a', 'latin1'));
    expect([...jolietFiles(iso).keys()]).toEqual(['meta-data', 'network-config', 'user-data']);
  });

  it('stores every byte at its extent, both trees pointing at the same data', () => {
    const want = new Map([
      ['meta-data', Buffer.from(docs.metaData)],
      ['network-config', Buffer.from(docs.networkConfig)],
      ['user-data', Buffer.alloc(0)],
    ]);
    expect(rockRidgeFiles(iso)).toEqual(want);
    expect(jolietFiles(iso)).toEqual(want);
  });

  it('places a file larger than one sector over consecutive sectors, and an empty one', () => {
    const big = Buffer.alloc(5000, 0xa5);
    big.write('end', 4997);
    const image = buildIso({ a: 'x', big, 'empty-file': '', z: 'last' }, 'cidata', DATE);
    const root = rootOf(descriptor(image, 16));
    const recs = readDir(image, root.extent, root.size).slice(2);
    const byName = new Map(recs.map((r) => [r.su.get('NM')!.toString('ascii', 1), r]));
    const [a, b, e, z] = ['a', 'big', 'empty-file', 'z'].map((n) => byName.get(n)!);
    expect(b!.size).toBe(5000);
    expect(b!.extent).toBe(a!.extent + 1);
    expect(e!.size).toBe(0);
    expect(z!.extent).toBe(b!.extent + 3); // 5000 bytes take three sectors
    expect(rockRidgeFiles(image).get('big')).toEqual(big);
    expect(jolietFiles(image).get('z')!.toString()).toBe('last');
    expect(image.length).toBe((z!.extent + 1) * SECTOR);
  });

  it('spreads a long directory over sectors without splitting a record', () => {
    const files = Object.fromEntries(
      Array.from({ length: 40 }, (_, i) => [
        `file-with-a-long-name-${String(i).padStart(2, '0')}`,
        `${i}`,
      ]),
    );
    const image = buildIso(files, 'cidata', DATE);
    const root = rootOf(descriptor(image, 16));
    expect(root.size).toBeGreaterThan(SECTOR); // readDir checks no record crosses a sector
    const rr = rockRidgeFiles(image);
    expect(rr.size).toBe(40);
    expect(rr.get('file-with-a-long-name-39')!.toString()).toBe('39');
    expect(jolietFiles(image).size).toBe(40);
    const recs = readDir(image, root.extent, root.size).slice(2);
    const ids = recs.map((r) => r.id.toString('ascii'));
    expect(new Set(ids).size).toBe(40); // 8.3 names made unique
    expect(ids).toEqual([...ids].sort());
    expect(ids).toContain('FILE_WIT.;1'); // the first keeps its name, later ones are numbered
    expect(ids).toContain('FILE_W39.;1');
  });

  it('maps names to 8.3 upper case, keeping an extension', () => {
    const image = buildIso({ 'vendor.data.yaml': 'v', 'x-y': 'z' }, 'CIDATA', DATE);
    const root = rootOf(descriptor(image, 16));
    const ids = readDir(image, root.extent, root.size)
      .slice(2)
      .map((r) => r.id.toString('ascii'));
    expect(ids).toEqual(['VENDOR_D.YAM;1', 'X_Y.;1']);
    expect(descriptor(image, 16).toString('ascii', 40, 46)).toBe('CIDATA');
  });

  it('is deterministic for a given date', () => {
    expect(buildSeedIso(docs, DATE).equals(iso)).toBe(true);
    expect(buildSeedIso(docs, new Date('2025-01-01T00:00:00Z')).equals(iso)).toBe(false);
  });

  it.each([
    ['a slash', { 'a/b': 'x' }, 'cidata'],
    ['dot', { '.': 'x' }, 'cidata'],
    ['dot dot', { '..': 'x' }, 'cidata'],
    ['a space', { 'a b': 'x' }, 'cidata'],
    ['a name of 65 characters', { ['a'.repeat(65)]: 'x' }, 'cidata'],
    ['an empty volume id', { a: 'x' }, ''],
    ['a volume id of 17 characters', { a: 'x' }, 'a'.repeat(17)],
    ['a volume id with a space', { a: 'x' }, 'ci data'],
  ])('rejects %s', (_what, files, volumeId) => {
    expect(() => buildIso(files, volumeId, DATE)).toThrow(TypeError);
  });
});
