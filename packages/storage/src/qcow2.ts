import { StorageError } from './errors.js';
import type { ImageFormat } from './qemu-img.js';

/**
 * An empty qcow2 (v3) image, optionally over a backing file, rendered in-process: the bytes
 * `qemu-img create -f qcow2 [-b BACKING -F FORMAT] PATH SIZE` (QEMU 7.2) writes, so a launch
 * needs no qemu-img process for its root disk. Pure; the tests compare it with qemu-img's file
 * and run `qemu-img check` on it.
 *
 * Layout (64 KiB clusters, 16-bit refcounts, no snapshots, no features):
 *   cluster 0   header (112 bytes), extensions (backing format, feature names, end), backing name
 *   cluster 1   refcount table: one entry, pointing at cluster 2
 *   cluster 2   refcount block: refcount 1 for clusters 0..2 and the L1 table's clusters
 *   cluster 3.. L1 table (all zero: nothing allocated, every read falls through to the backing
 *               file), written only up to its last entry, as QEMU does
 */

const CLUSTER_BITS = 16;
const CLUSTER_SIZE = 1 << CLUSTER_BITS;
/** Bytes of guest data one L1 entry maps: one L2 table of CLUSTER_SIZE / 8 entries. */
const BYTES_PER_L1_ENTRY = CLUSTER_SIZE * (CLUSTER_SIZE / 8);
const REFCOUNT_ORDER = 4; // 16-bit refcounts
const HEADER_LENGTH = 112; // v3 header with the compression type byte (zlib = 0) and padding
const REFCOUNT_TABLE_OFFSET = CLUSTER_SIZE;
const REFCOUNT_BLOCK_OFFSET = 2 * CLUSTER_SIZE;
const L1_TABLE_OFFSET = 3 * CLUSTER_SIZE;
/** QEMU's limit on the backing file name (and what fits in cluster 0 with room to spare). */
const MAX_BACKING_NAME_BYTES = 1023;
/** Largest L1 table QEMU opens (32 MiB), i.e. about 2 PiB of virtual size. */
const MAX_L1_ENTRIES = (32 * 1024 * 1024) / 8;

const EXT_BACKING_FORMAT = 0xe2792aca;
const EXT_FEATURE_NAMES = 0x6803f857;

/** The feature name table QEMU writes into every new image: [type, bit, name]. */
const FEATURE_NAMES: readonly (readonly [number, number, string])[] = [
  [0, 0, 'dirty bit'],
  [0, 1, 'corrupt bit'],
  [0, 2, 'external data file'],
  [0, 3, 'compression type'],
  [0, 4, 'extended L2 entries'],
  [1, 0, 'lazy refcounts'],
  [2, 0, 'bitmaps'],
  [2, 1, 'raw external data'],
];
const FEATURE_NAME_ENTRY = 48;

export interface Qcow2ImageSpec {
  /** Virtual size in bytes; rounded up to a multiple of 512 as qemu-img does. */
  virtualSize: number;
  /** Absolute path of the backing file, stored verbatim; omit for a standalone empty image. */
  backingFile?: string;
  backingFormat?: ImageFormat;
}

const pad8 = (n: number) => (n + 7) & ~7;

/** The virtual size qemu-img gives an image asked for `sizeBytes` (next multiple of 512). */
export function qcow2VirtualSize(sizeBytes: number): number {
  return Math.ceil(sizeBytes / 512) * 512;
}

/** The whole file of a new, empty qcow2 image. */
export function renderQcow2Image(spec: Qcow2ImageSpec): Buffer {
  const { backingFile, backingFormat } = spec;
  if (!Number.isSafeInteger(spec.virtualSize) || spec.virtualSize <= 0) {
    throw new StorageError('InvalidParameterValue', `invalid size ${String(spec.virtualSize)}`);
  }
  if ((backingFile === undefined) !== (backingFormat === undefined)) {
    throw new StorageError('InvalidParameterValue', 'a backing file needs its format, and back');
  }
  const size = qcow2VirtualSize(spec.virtualSize);
  const l1Entries = Math.ceil(size / BYTES_PER_L1_ENTRY);
  if (l1Entries > MAX_L1_ENTRIES) {
    throw new StorageError('InvalidParameterValue', `size ${size} is too large for qcow2`);
  }
  const name = backingFile === undefined ? null : Buffer.from(backingFile, 'utf8');
  if (name && (name.length === 0 || name.length > MAX_BACKING_NAME_BYTES || name.includes(0))) {
    throw new StorageError('InvalidParameterValue', `invalid backing file name ${backingFile}`);
  }
  const format = backingFormat === undefined ? null : Buffer.from(backingFormat, 'ascii');

  const l1Bytes = l1Entries * 8;
  const l1Clusters = Math.ceil(l1Bytes / CLUSTER_SIZE);
  const buf = Buffer.alloc(L1_TABLE_OFFSET + l1Bytes);

  // header extensions, then the backing file name right after the end marker
  let at = HEADER_LENGTH;
  const extension = (type: number, length: number) => {
    buf.writeUInt32BE(type, at);
    buf.writeUInt32BE(length, at + 4);
    at += 8;
    const data = at;
    at += pad8(length);
    return data;
  };
  if (format) format.copy(buf, extension(EXT_BACKING_FORMAT, format.length));
  let entry = extension(EXT_FEATURE_NAMES, FEATURE_NAMES.length * FEATURE_NAME_ENTRY);
  for (const [type, bit, text] of FEATURE_NAMES) {
    buf.writeUInt8(type, entry);
    buf.writeUInt8(bit, entry + 1);
    buf.write(text, entry + 2, 'ascii');
    entry += FEATURE_NAME_ENTRY;
  }
  extension(0, 0);
  const backingOffset = name ? at : 0;
  if (name) name.copy(buf, backingOffset);

  buf.write('QFI\xfb', 0, 'latin1'); // magic
  buf.writeUInt32BE(3, 4); // version
  buf.writeBigUInt64BE(BigInt(backingOffset), 8);
  buf.writeUInt32BE(name ? name.length : 0, 16);
  buf.writeUInt32BE(CLUSTER_BITS, 20);
  buf.writeBigUInt64BE(BigInt(size), 24);
  // 32 crypt_method 0
  buf.writeUInt32BE(l1Entries, 36);
  buf.writeBigUInt64BE(BigInt(L1_TABLE_OFFSET), 40);
  buf.writeBigUInt64BE(BigInt(REFCOUNT_TABLE_OFFSET), 48);
  buf.writeUInt32BE(1, 56); // refcount table clusters
  // 60 nb_snapshots 0, 64 snapshots_offset 0, 72..95 feature bits 0
  buf.writeUInt32BE(REFCOUNT_ORDER, 96);
  buf.writeUInt32BE(HEADER_LENGTH, 100);
  // 104 compression type 0 (zlib), padding

  buf.writeBigUInt64BE(BigInt(REFCOUNT_BLOCK_OFFSET), REFCOUNT_TABLE_OFFSET);
  for (let c = 0; c < 3 + l1Clusters; c++) buf.writeUInt16BE(1, REFCOUNT_BLOCK_OFFSET + 2 * c);
  return buf;
}
