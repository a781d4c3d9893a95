/**
 * A small ISO 9660 image builder: one flat root directory, with Rock Ridge (long lower-case
 * names, POSIX modes) and Joliet, laid out as `genisoimage -joliet -rock` lays them out. Pure:
 * files and a volume id in, the image's bytes out. Enough for a NoCloud seed; no subdirectories.
 *
 * Layout, in 2048-byte sectors:
 *   0-15  system area (zeros)      19-20 path tables, L and M       23..  primary root directory
 *   16    primary descriptor       21-22 Joliet path tables, L, M   then  Joliet root directory
 *   17    Joliet descriptor                                         then  Rock Ridge ER (via CE)
 *   18    descriptor terminator                                     then  the files' data
 */

export const SECTOR = 2048;

/** Rock Ridge modes (st_mode): the root directory r-xr-xr-x, files rw-r--r--, as genisoimage. */
const DIR_MODE = 0o040555;
const FILE_MODE = 0o100644;

const NAME_RE = /^(?!\.\.?$)[A-Za-z0-9._-]{1,64}$/;
const VOLUME_ID_RE = /^[A-Za-z0-9_-]{1,16}$/;

/** The files of the root directory: name -> bytes (a string is written as UTF-8). */
export type IsoFiles = Readonly<Record<string, string | Uint8Array>>;

/** One directory tree: its volume descriptor, path tables and root directory (all sectors). */
interface Tree {
  kind: 'primary' | 'joliet';
  descriptor: number;
  pathTable: number;
  root: number;
  sectors: number;
}

interface Node {
  name: string;
  data: Buffer;
  /** First sector of the data (for an empty file: where its data would start, as genisoimage). */
  extent: number;
  /** The ISO 9660 (8.3, upper case) identifier, `NAME.EXT;1`. */
  isoId: string;
}

/**
 * The image: `volumeId` (e.g. `cidata`, which cloud-init's NoCloud and blkid look for) in the
 * primary and the Joliet descriptor; every file in the root directory under its own name for
 * Rock Ridge and Joliet readers, and an 8.3 name for plain ISO 9660 ones. `date` stamps the
 * volume and every record (UTC).
 */
export function buildIso(files: IsoFiles, volumeId: string, date: Date = new Date()): Buffer {
  if (!VOLUME_ID_RE.test(volumeId)) {
    throw new TypeError(`invalid ISO volume id ${JSON.stringify(volumeId)}`);
  }
  const names = Object.keys(files).sort();
  for (const name of names) {
    if (!NAME_RE.test(name)) throw new TypeError(`invalid ISO file name ${JSON.stringify(name)}`);
  }
  const nodes = primaryOrder(
    names.map((name) => ({ name, data: toBuffer(files[name]!), extent: 0, isoId: '' })),
  );

  // Record lengths do not depend on extents: size the directories first, then place the rest.
  const primary: Tree = { kind: 'primary', descriptor: 16, pathTable: 19, root: 23, sectors: 0 };
  primary.sectors = sectorsOf(directory(primary, nodes, 0, date));
  const joliet: Tree = { ...primary, kind: 'joliet', descriptor: 17, pathTable: 21 };
  joliet.root = primary.root + primary.sectors;
  joliet.sectors = sectorsOf(directory(joliet, nodes, 0, date));
  const continuation = joliet.root + joliet.sectors;
  let total = continuation + 1;
  for (const node of nodes) {
    node.extent = total;
    total += Math.ceil(node.data.length / SECTOR);
  }

  const image = Buffer.alloc(total * SECTOR);
  for (const tree of [primary, joliet]) {
    writeDescriptor(image, tree, volumeId, total, date);
    writePathTables(image, tree);
    pack(directory(tree, nodes, continuation, date)).copy(image, tree.root * SECTOR);
  }
  image.write('\xffCD001\x01', 18 * SECTOR, 'latin1'); // descriptor set terminator
  RRIP_ER.copy(image, continuation * SECTOR);
  for (const node of nodes) node.data.copy(image, node.extent * SECTOR);
  return image;
}

function toBuffer(data: string | Uint8Array): Buffer {
  return typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data);
}

/**
 * Give each node its 8.3 identifier (upper case, other characters '_', like genisoimage:
 * meta-data -> META_DAT.;1; a clash ends the base in a number) and sort them as ISO 9660
 * orders a directory: by base, then extension, each padded with spaces.
 */
function primaryOrder(nodes: Node[]): Node[] {
  const clean = (s: string, max: number) =>
    s
      .toUpperCase()
      .replace(/[^A-Z0-9_]/g, '_')
      .slice(0, max);
  const taken = new Set<string>();
  const key = new Map<Node, string>();
  for (const node of nodes) {
    const dot = node.name.lastIndexOf('.');
    const stem = clean(dot > 0 ? node.name.slice(0, dot) : node.name, 8);
    const ext = dot > 0 ? clean(node.name.slice(dot + 1), 3) : '';
    let base = stem;
    for (let i = 1; taken.has(`${base}.${ext}`); i++) {
      base = stem.slice(0, 8 - String(i).length) + i;
    }
    taken.add(`${base}.${ext}`);
    node.isoId = `${base}.${ext};1`;
    key.set(node, base.padEnd(8) + ext.padEnd(3));
  }
  return nodes.sort((a, b) => (key.get(a)! < key.get(b)! ? -1 : 1));
}

// ------------------------------------------------------------------------ directory records

/**
 * A root directory's records. Primary: `.` (carrying SP, PX, TF and a CE to the ER), `..`, then
 * the files by their 8.3 names, each with its own name in NM. Joliet: the same files under their
 * own names in UCS-2 (big endian), without a version, and no Rock Ridge.
 */
function directory(tree: Tree, nodes: Node[], continuation: number, date: Date): Buffer[] {
  const size = tree.sectors * SECTOR;
  if (tree.kind === 'joliet') {
    return [
      record(Buffer.of(0), tree.root, size, true, date),
      record(Buffer.of(1), tree.root, size, true, date),
      ...[...nodes]
        .sort((a, b) => (a.name < b.name ? -1 : 1))
        .map((n) => record(ucs2(n.name), n.extent, n.data.length, false, date)),
    ];
  }
  const dirEntries = [rrFlags(RR_PX | RR_TF), px(DIR_MODE, 2), tf(date)];
  return [
    record(Buffer.of(0), tree.root, size, true, date, SP, ...dirEntries, ce(continuation)),
    record(Buffer.of(1), tree.root, size, true, date, ...dirEntries),
    ...nodes.map((n) =>
      record(
        Buffer.from(n.isoId, 'ascii'),
        n.extent,
        n.data.length,
        false,
        date,
        rrFlags(RR_PX | RR_NM | RR_TF),
        nm(n.name),
        px(FILE_MODE, 1),
        tf(date),
      ),
    ),
  ];
}

/** One directory record (ECMA-119 9.1); its system use area holds the Rock Ridge entries. */
function record(
  id: Buffer,
  extent: number,
  size: number,
  isDir: boolean,
  date: Date,
  ...systemUse: Buffer[]
): Buffer {
  const su = Buffer.concat(systemUse);
  const idEnd = 33 + id.length + (id.length % 2 === 0 ? 1 : 0); // the SU area starts even
  const length = idEnd + su.length + (su.length % 2);
  if (length > 255) throw new RangeError(`directory record too long (${length} bytes)`);
  const r = Buffer.alloc(length);
  r[0] = length;
  both32(r, 2, extent);
  both32(r, 10, size);
  recordDate(date).copy(r, 18);
  r[25] = isDir ? 2 : 0;
  both16(r, 28, 1); // volume sequence number
  r[32] = id.length;
  id.copy(r, 33);
  su.copy(r, idEnd);
  return r;
}

/** Sector offsets of each record: a record never crosses a sector boundary. */
function place(records: Buffer[]): { offsets: number[]; sectors: number } {
  const offsets: number[] = [];
  let at = 0;
  for (const r of records) {
    if (Math.floor(at / SECTOR) !== Math.floor((at + r.length - 1) / SECTOR)) {
      at = Math.ceil(at / SECTOR) * SECTOR;
    }
    offsets.push(at);
    at += r.length;
  }
  return { offsets, sectors: Math.ceil(at / SECTOR) };
}

function sectorsOf(records: Buffer[]): number {
  return place(records).sectors;
}

function pack(records: Buffer[]): Buffer {
  const { offsets, sectors } = place(records);
  const out = Buffer.alloc(sectors * SECTOR);
  records.forEach((r, i) => r.copy(out, offsets[i]!));
  return out;
}

// ------------------------------------------------------------------------ Rock Ridge (RRIP 1.09)

const RR_PX = 0x01;
const RR_NM = 0x08;
const RR_TF = 0x80;

function suEntry(sig: string, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from(sig, 'ascii'), Buffer.of(4 + body.length, 1), body]);
}

/** SUSP indicator, first in the root's `.` record: later entries start at byte 0 of each SU area. */
const SP = suEntry('SP', Buffer.of(0xbe, 0xef, 0));

/** The (RRIP 1.09) list of which Rock Ridge entries follow. */
function rrFlags(flags: number): Buffer {
  return suEntry('RR', Buffer.of(flags));
}

function px(mode: number, links: number): Buffer {
  const body = Buffer.alloc(32); // mode, links, uid 0, gid 0
  both32(body, 0, mode);
  both32(body, 8, links);
  return suEntry('PX', body);
}

/** Modify, access and attribute-change times, all `date`. */
function tf(date: Date): Buffer {
  const d = recordDate(date);
  return suEntry('TF', Buffer.concat([Buffer.of(0x0e), d, d, d]));
}

function nm(name: string): Buffer {
  return suEntry('NM', Buffer.concat([Buffer.of(0), Buffer.from(name, 'ascii')]));
}

/** The extension reference does not fit the root's `.` record: it lives in its own sector. */
function ce(sector: number): Buffer {
  const body = Buffer.alloc(24);
  both32(body, 0, sector);
  both32(body, 8, 0);
  both32(body, 16, RRIP_ER.length);
  return suEntry('CE', body);
}

/** ER: the extension in use, RRIP_1991A; Linux's isofs turns Rock Ridge on when it sees it. */
const RRIP_ER = (() => {
  const id = 'RRIP_1991A';
  const des =
    'THE ROCK RIDGE INTERCHANGE PROTOCOL PROVIDES SUPPORT FOR POSIX FILE SYSTEM SEMANTICS';
  const src =
    'PLEASE CONTACT DISC PUBLISHER FOR SPECIFICATION SOURCE.  SEE PUBLISHER IDENTIFIER IN ' +
    'PRIMARY VOLUME DESCRIPTOR FOR CONTACT INFORMATION.';
  return suEntry(
    'ER',
    Buffer.concat([Buffer.of(id.length, des.length, src.length, 1), Buffer.from(id + des + src)]),
  );
})();

// ------------------------------------------------------------------------ volume descriptors

/** The primary (type 1) or Joliet supplementary (type 2, UCS-2 level 3) volume descriptor. */
function writeDescriptor(
  image: Buffer,
  tree: Tree,
  volumeId: string,
  totalSectors: number,
  date: Date,
): void {
  const { kind } = tree;
  const d = image.subarray(tree.descriptor * SECTOR, (tree.descriptor + 1) * SECTOR);
  const text = (at: number, len: number, s: string) =>
    (kind === 'joliet' ? ucs2Field(s, len) : Buffer.from(s.padEnd(len), 'ascii')).copy(d, at);
  d.write(`${kind === 'joliet' ? '\x02' : '\x01'}CD001\x01`, 0, 'latin1');
  text(8, 32, 'LINUX'); // system identifier
  text(40, 32, volumeId);
  both32(d, 80, totalSectors);
  if (kind === 'joliet') d.write('%/E', 88, 'ascii'); // UCS-2 level 3
  both16(d, 120, 1); // volume set size
  both16(d, 124, 1); // volume sequence number
  both16(d, 128, SECTOR);
  both32(d, 132, PATH_TABLE_SIZE);
  d.writeUInt32LE(tree.pathTable, 140);
  d.writeUInt32BE(tree.pathTable + 1, 148);
  record(Buffer.of(0), tree.root, tree.sectors * SECTOR, true, date).copy(d, 156);
  for (const [at, len] of [
    [190, 128], // volume set
    [318, 128], // publisher
    [446, 128], // data preparer
    [702, 37], // copyright file
    [739, 37], // abstract file
    [776, 37], // bibliographic file
  ] as const) {
    text(at, len, '');
  }
  text(574, 128, 'MINICLOUD'); // application
  const stamp = volumeDate(date);
  stamp.copy(d, 813); // creation
  stamp.copy(d, 830); // modification
  Buffer.from('0000000000000000\0', 'latin1').copy(d, 847); // expiration: none
  stamp.copy(d, 864); // effective
  d[881] = 1; // file structure version
}

const PATH_TABLE_SIZE = 10;

/** L (little endian) and M (big endian) path tables, one sector each: only the root. */
function writePathTables(image: Buffer, tree: Tree): void {
  const l = image.subarray(tree.pathTable * SECTOR);
  const m = image.subarray((tree.pathTable + 1) * SECTOR);
  l[0] = m[0] = 1; // identifier length: the root's is one 0x00 byte
  l.writeUInt32LE(tree.root, 2);
  m.writeUInt32BE(tree.root, 2);
  l.writeUInt16LE(1, 6); // parent directory number
  m.writeUInt16BE(1, 6);
}

// ------------------------------------------------------------------------ encodings

function both16(b: Buffer, at: number, v: number): void {
  b.writeUInt16LE(v, at);
  b.writeUInt16BE(v, at + 2);
}

function both32(b: Buffer, at: number, v: number): void {
  b.writeUInt32LE(v, at);
  b.writeUInt32BE(v, at + 4);
}

function ucs2(s: string): Buffer {
  return Buffer.from(s, 'utf16le').swap16();
}

/** A Joliet descriptor field: UCS-2 big endian, padded with UCS-2 spaces (an odd tail byte 0). */
function ucs2Field(s: string, len: number): Buffer {
  const out = Buffer.alloc(len);
  ucs2(s.padEnd(len >> 1)).copy(out);
  return out;
}

/** Directory record time (ECMA-119 9.1.5): years since 1900, month .. second, offset 0 (UTC). */
function recordDate(date: Date): Buffer {
  return Buffer.of(
    date.getUTCFullYear() - 1900,
    date.getUTCMonth() + 1,
    date.getUTCDate(),
    date.getUTCHours(),
    date.getUTCMinutes(),
    date.getUTCSeconds(),
    0,
  );
}

/** Volume descriptor time (ECMA-119 8.4.26.1): "YYYYMMDDHHMMSScc" and an offset byte (UTC). */
function volumeDate(date: Date): Buffer {
  const stamp = date
    .toISOString()
    .replace(/[-:T]/g, '')
    .replace(/\.(\d\d)\d+Z$/, '$1');
  return Buffer.from(`${stamp}\0`, 'latin1');
}
