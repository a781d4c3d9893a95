import { qcow2VirtualSize, renderQcow2Image } from '../src/index.js';

/** The header fields of a qcow2 file that say what it is (see qcow2.ts for the layout). */
function header(buf: Buffer) {
  const backingOffset = Number(buf.readBigUInt64BE(8));
  const backingSize = buf.readUInt32BE(16);
  return {
    magic: buf.subarray(0, 4).toString('latin1'),
    version: buf.readUInt32BE(4),
    backing: backingOffset
      ? buf.toString('utf8', backingOffset, backingOffset + backingSize)
      : null,
    clusterBits: buf.readUInt32BE(20),
    size: Number(buf.readBigUInt64BE(24)),
    l1Size: buf.readUInt32BE(36),
    l1Offset: Number(buf.readBigUInt64BE(40)),
    refcountTableOffset: Number(buf.readBigUInt64BE(48)),
    refcountOrder: buf.readUInt32BE(96),
    headerLength: buf.readUInt32BE(100),
  };
}

describe('renderQcow2Image', () => {
  const base = '/var/lib/minicloud/images/ami-00000000000000001.qcow2';

  it('writes a v3 header over the backing file, its format and an empty L1 table', () => {
    const buf = renderQcow2Image({
      virtualSize: 8 * 1024 ** 3,
      backingFile: base,
      backingFormat: 'qcow2',
    });
    expect(header(buf)).toEqual({
      magic: 'QFI\xfb',
      version: 3,
      backing: base,
      clusterBits: 16,
      size: 8 * 1024 ** 3,
      l1Size: 16, // 512 MiB per entry
      l1Offset: 0x30000,
      refcountTableOffset: 0x10000,
      refcountOrder: 4,
      headerLength: 112,
    });
    expect(buf.length).toBe(0x30000 + 16 * 8);
    expect(buf.indexOf('qcow2', 112, 'ascii')).toBeGreaterThan(112); // backing format extension
    expect(buf.readBigUInt64BE(0x10000)).toBe(0x20000n); // refcount table -> block
    expect([0, 1, 2, 3, 4].map((c) => buf.readUInt16BE(0x20000 + 2 * c))).toEqual([1, 1, 1, 1, 0]);
    expect(buf.subarray(0x30000).every((b) => b === 0)).toBe(true);
  });

  it('counts every cluster of a large L1 table, and rounds the size up to 512 bytes', () => {
    const buf = renderQcow2Image({
      virtualSize: 16 * 1024 ** 4,
      backingFile: base,
      backingFormat: 'raw',
    });
    expect(header(buf).l1Size).toBe(32768);
    expect(buf.length).toBe(0x70000); // 3 clusters + a 4-cluster L1 table
    expect([5, 6, 7].map((c) => buf.readUInt16BE(0x20000 + 2 * c))).toEqual([1, 1, 0]);
    expect(qcow2VirtualSize(1000)).toBe(1024);
    expect(header(renderQcow2Image({ virtualSize: 1000 })).size).toBe(1024);
  });

  it('writes a standalone image without a backing file', () => {
    const buf = renderQcow2Image({ virtualSize: 1024 ** 3 });
    expect(header(buf).backing).toBeNull();
    expect(buf.readUInt32BE(16)).toBe(0);
  });

  it('refuses what qemu-img would refuse', () => {
    for (const bad of [
      { virtualSize: 0 },
      { virtualSize: -1 },
      { virtualSize: 1.5 },
      { virtualSize: 2 ** 60 },
      { virtualSize: 1024, backingFile: base },
      { virtualSize: 1024, backingFile: 'x'.repeat(1024), backingFormat: 'qcow2' as const },
      { virtualSize: 1024, backingFile: 'a\0b', backingFormat: 'qcow2' as const },
    ]) {
      expect(() => renderQcow2Image(bad)).toThrow(
        expect.objectContaining({ code: 'InvalidParameterValue' }),
      );
    }
  });
});
