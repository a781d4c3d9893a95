import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  assertImageId,
  assertSafeImage,
  ImageStore,
  parseQemuImgInfo,
  progressThrottle,
  qemuImgCreateOverlayArgs,
  qemuImgInfoArgs,
  removeFile,
  StorageError,
  type ImageInfo,
} from '../src/index.js';

const codeOf = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (e) {
    return (e as StorageError).code;
  }
  return undefined;
};

describe('qemu-img argv', () => {
  it('runs info under prlimit, without probing once the format is known', () => {
    expect(qemuImgInfoArgs('/data/images/x.qcow2', 'qcow2')).toEqual([
      '--as=1073741824',
      '--cpu=30',
      'qemu-img',
      'info',
      '--output=json',
      '-U',
      '-f',
      'qcow2',
      '/data/images/x.qcow2',
    ]);
    expect(qemuImgInfoArgs('/data/x.partial')).not.toContain('-f');
  });

  it('builds overlay creation with explicit formats', () => {
    expect(qemuImgCreateOverlayArgs('/d/root.qcow2', '/i/ami.raw', 'raw')).toEqual([
      'create',
      '-q',
      '-f',
      'qcow2',
      '-b',
      '/i/ami.raw',
      '-F',
      'raw',
      '/d/root.qcow2',
    ]);
    expect(qemuImgCreateOverlayArgs('/d/r.qcow2', '/i/a.qcow2', 'qcow2', 8589934592).at(-1)).toBe(
      '8589934592',
    );
  });

  it.each([
    ['relative path', () => qemuImgInfoArgs('x.qcow2')],
    ['path with ..', () => qemuImgInfoArgs('/data/../etc/shadow')],
    ['unknown format', () => qemuImgInfoArgs('/x', 'vmdk' as 'raw')],
    ['relative backing', () => qemuImgCreateOverlayArgs('/d/r.qcow2', 'a.qcow2', 'qcow2')],
    ['bad size', () => qemuImgCreateOverlayArgs('/d/r.qcow2', '/a.qcow2', 'qcow2', -1)],
    ['fractional size', () => qemuImgCreateOverlayArgs('/d/r.qcow2', '/a.qcow2', 'qcow2', 1.5)],
  ])('rejects %s', (_w, fn) => expect(codeOf(fn)).toBe('InvalidParameterValue'));
});

describe('parseQemuImgInfo / assertSafeImage', () => {
  const qcow2 = JSON.stringify({
    'virtual-size': 16777216,
    filename: 'base.qcow2',
    format: 'qcow2',
    'actual-size': 200704,
    'format-specific': { type: 'qcow2', data: { compat: '1.1', corrupt: false } },
  });
  const base: ImageInfo = parseQemuImgInfo(qcow2);

  it('parses the fields', () => {
    expect(base).toEqual({
      format: 'qcow2',
      virtualSize: 16777216,
      actualSize: 200704,
      backingFile: null,
      backingFormat: null,
      dataFile: null,
      encrypted: false,
      corrupt: false,
    });
    expect(assertSafeImage(base)).toBe('qcow2');
  });

  it('finds backing and data files', () => {
    const over = parseQemuImgInfo(
      JSON.stringify({
        format: 'qcow2',
        'virtual-size': 1,
        'backing-filename': 'base.qcow2',
        'full-backing-filename': '/x/base.qcow2',
        'backing-filename-format': 'qcow2',
      }),
    );
    expect(over.backingFile).toBe('/x/base.qcow2');
    expect(over.backingFormat).toBe('qcow2');
    const df = parseQemuImgInfo(
      JSON.stringify({
        format: 'qcow2',
        'virtual-size': 1,
        'format-specific': { data: { 'data-file': '/etc/shadow' } },
      }),
    );
    expect(df.dataFile).toBe('/etc/shadow');
  });

  it.each<[string, Partial<ImageInfo>]>([
    ['vmdk', { format: 'vmdk' }],
    ['backing file', { backingFile: '/etc/passwd' }],
    ['data file', { dataFile: '/dev/sda' }],
    ['encrypted', { encrypted: true }],
    ['corrupt', { corrupt: true }],
    ['empty', { virtualSize: 0 }],
  ])('refuses %s', (_w, patch) => {
    expect(codeOf(() => assertSafeImage({ ...base, ...patch }))).toBe('InvalidImage');
  });

  it('refuses garbage', () => {
    expect(codeOf(() => parseQemuImgInfo('not json'))).toBe('InvalidImage');
    expect(codeOf(() => parseQemuImgInfo('{}'))).toBe('InvalidImage');
  });
});

describe('image ids and paths', () => {
  let dir: string;
  beforeAll(() => (dir = mkdtempSync(join(tmpdir(), 'minicloud-test-st-'))));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('validates image ids before they reach a path', () => {
    expect(assertImageId('ami-0123456789abcdef0')).toBe('ami-0123456789abcdef0');
    for (const bad of [
      'ami-0123',
      '../ami-0123456789abcdef0',
      'ami-0123456789ABCDEF0',
      'i-0123456789abcdef0',
    ]) {
      expect(codeOf(() => assertImageId(bad))).toBe('InvalidParameterValue');
    }
    const store = new ImageStore({ imagesDir: dir });
    expect(store.imagePath('ami-0123456789abcdef0', 'raw')).toBe(
      join(dir, 'ami-0123456789abcdef0.raw'),
    );
    expect(codeOf(() => store.imagePath('ami-../../x', 'raw'))).toBe('InvalidParameterValue');
    expect(codeOf(() => new ImageStore({ imagesDir: 'relative' }))).toBe('InvalidParameterValue');
  });

  it('refuses local sources unless allowed, and bad URLs', async () => {
    const store = new ImageStore({ imagesDir: dir });
    await expect(
      store.importImage({ imageId: 'ami-0123456789abcdef0', source: '/etc/hostname' }),
    ).rejects.toMatchObject({ code: 'InvalidParameterValue' });
    await expect(
      store.importImage({ imageId: 'ami-0123456789abcdef0', source: 'ftp://x/y' }),
    ).rejects.toMatchObject({ code: 'InvalidParameterValue' });
    await expect(store.importImage({ imageId: 'nope', source: '/x' })).rejects.toMatchObject({
      code: 'InvalidParameterValue',
    });
  });

  it('removeFile refuses relative paths and directories, tolerates missing files', async () => {
    await expect(removeFile('x')).rejects.toBeInstanceOf(StorageError);
    await expect(removeFile(dir)).rejects.toMatchObject({ code: 'InvalidParameterValue' });
    await removeFile(join(dir, 'missing'));
  });
});

describe('progressThrottle', () => {
  it('reports every 1% with a known total, and once at the end', () => {
    const calls: number[] = [];
    const t = progressThrottle(
      (c) => calls.push(c),
      1000,
      () => 0,
    );
    for (let c = 1; c <= 1000; c++) t.update(c);
    t.done(1000);
    expect(calls.length).toBe(101); // the first chunk (0%), then each new percent
    expect(calls[0]).toBe(1);
    expect(calls[1]).toBe(10);
    expect(calls.at(-1)).toBe(1000);
  });

  it('reports every 250 ms without a total', () => {
    let now = 0;
    const calls: [number, number | null][] = [];
    const t = progressThrottle(
      (c, total) => calls.push([c, total]),
      null,
      () => now,
    );
    for (let c = 1; c <= 100; c++) {
      now += 50;
      t.update(c);
    }
    t.done(100);
    expect(calls.length).toBe(21); // first update, then every 5th (250 ms), then the final
    expect(calls.at(-1)).toEqual([100, null]);
  });
});
