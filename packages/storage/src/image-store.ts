import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import {
  link,
  mkdir,
  open,
  readdir,
  realpath,
  rename,
  rm,
  stat,
  statfs,
  unlink,
} from 'node:fs/promises';
import { isAbsolute, join, sep } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { run as hostRun, type CommandRunner, pathExists } from '@minicloud/host';
import { StorageError } from './errors.js';
import { openDownload, type DownloadPolicy } from './http-download.js';
import { renderQcow2Image } from './qcow2.js';
import {
  assertSafeImage,
  inspectImage,
  isImageFormat,
  qemuImgCreateOverlayArgs,
  type ImageFormat,
} from './qemu-img.js';

/**
 * The image store: one flat directory of base images.
 *
 *   <imagesDir>/<imageId>.qcow2 | <imageId>.raw   a validated image; the extension IS the format,
 *                                                 so it is never probed again (probing a raw
 *                                                 image is how a guest-written qcow2 header
 *                                                 would become trusted)
 *   <imagesDir>/<imageId>.partial                 an import in progress (or one that crashed:
 *                                                 the reconciler may delete it)
 *
 * Images (and root overlays) are written 0600: libvirt's dynamic ownership chowns every file of
 * a running guest's backing chain to QEMU's user; the directories need only let QEMU pass
 * (0710, group QEMU's, made by the server at start).
 */

const IMAGE_ID_RE = /^ami-[0-9a-f]{17}$/;
const IMAGE_FILE_RE = /^(ami-[0-9a-f]{17})\.(qcow2|raw)$/;
const PARTIAL_FILE_RE = /^(ami-[0-9a-f]{17})\.partial$/;

export function assertImageId(imageId: string): string {
  if (typeof imageId !== 'string' || !IMAGE_ID_RE.test(imageId)) {
    throw new StorageError('InvalidParameterValue', `invalid image id ${JSON.stringify(imageId)}`);
  }
  return imageId;
}

export type ProgressCallback = (copiedBytes: number, totalBytes: number | null) => void;

export interface ImportImageRequest {
  imageId: string;
  /** An absolute local path (under one of allowLocalSourcesUnder) or an http(s) URL. */
  source: string;
  /** Expected format; checked against what qemu-img detects. */
  format?: ImageFormat;
  /** When given, the import fails with ChecksumMismatch unless the bytes hash to it. */
  expectedSha256?: string;
  /** Called at most every 1% or 250 ms, and once at the end. */
  onProgress?: ProgressCallback;
  signal?: AbortSignal;
}

export interface ImportedImage {
  path: string;
  format: ImageFormat;
  /** Bytes of the file as stored (the source's size). */
  sizeBytes: number;
  virtualSize: number;
  /** sha256 (hex) of the file's bytes. */
  checksumSha256: string;
}

export interface ImageFileEntry {
  imageId: string;
  path: string;
  /** null for a partial import. */
  format: ImageFormat | null;
  partial: boolean;
}

export interface ImageStoreOptions {
  imagesDir: string;
  /**
   * Directories local sources may come from (after resolving symlinks). Without it, local
   * sources are refused: importing /etc/shadow "as a raw image" would hand it to a guest.
   */
  allowLocalSourcesUnder?: string[];
  /** Largest file accepted (default 64 GiB). */
  maxImageBytes?: number;
  /**
   * Space left free in the images directory's file system after an import (default 1 GiB): an
   * image that would eat into it is refused up front (Content-Length) or while streaming.
   */
  keepFreeBytes?: number;
  /** What URLs may reach (allow-list), timeouts, redirects: see DownloadPolicy. */
  download?: DownloadPolicy;
  run?: CommandRunner;
}

/** The most bytes an import may write, and the error for going past it. */
interface ByteLimit {
  bytes: number;
  error(size: number | null): StorageError;
}

/** Throttles progress: fires when another 1% is done or 250 ms passed, plus a final call. */
export function progressThrottle(
  onProgress: ProgressCallback | undefined,
  totalBytes: number | null,
  now: () => number = () => performance.now(),
  intervalMs = 250,
): { update(copied: number): void; done(copied: number): void } {
  let lastAt = -Infinity;
  let lastPercent = -1;
  let lastReported = -1;
  const emit = (copied: number) => {
    lastAt = now();
    lastReported = copied;
    if (totalBytes) lastPercent = Math.floor((copied * 100) / totalBytes);
    onProgress?.(copied, totalBytes);
  };
  return {
    update(copied) {
      if (!onProgress) return;
      const percent = totalBytes ? Math.floor((copied * 100) / totalBytes) : -1;
      if ((totalBytes && percent > lastPercent) || now() - lastAt >= intervalMs) emit(copied);
    },
    done(copied) {
      if (onProgress && copied !== lastReported) emit(copied);
    },
  };
}

function isUrl(source: string): boolean {
  return /^https?:\/\//i.test(source);
}

async function sha256File(path: string): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(path)) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { sha256: hash.digest('hex'), size };
}

export class ImageStore {
  readonly imagesDir: string;
  private readonly allowLocal: string[] | null;
  private readonly maxImageBytes: number;
  private readonly keepFreeBytes: number;
  private readonly downloadPolicy: DownloadPolicy;
  private readonly run: CommandRunner;

  constructor(options: ImageStoreOptions) {
    if (!isAbsolute(options.imagesDir)) {
      throw new StorageError(
        'InvalidParameterValue',
        `imagesDir must be absolute: ${options.imagesDir}`,
      );
    }
    this.imagesDir = options.imagesDir;
    this.allowLocal = options.allowLocalSourcesUnder ?? null;
    this.maxImageBytes = options.maxImageBytes ?? 64 * 1024 ** 3;
    this.keepFreeBytes = options.keepFreeBytes ?? 1024 ** 3;
    this.downloadPolicy = options.download ?? {};
    this.run = options.run ?? hostRun;
  }

  /** The cap, or less when the images directory's file system has less room (keeping a reserve). */
  private async byteLimit(): Promise<ByteLimit> {
    const fs = await statfs(this.imagesDir);
    const free = Math.max(0, fs.bavail * fs.bsize - this.keepFreeBytes);
    const max = this.maxImageBytes;
    if (max <= free) {
      return {
        bytes: max,
        error: () =>
          new StorageError('ImageTooLarge', `image is larger than the limit of ${max} bytes`),
      };
    }
    return {
      bytes: free,
      error: (size) =>
        new StorageError(
          'InsufficientImageCapacity',
          `image is ${size === null ? `over ${free}` : size} bytes, but the images directory ` +
            `has only ${free} bytes free (keeping ${this.keepFreeBytes} in reserve)`,
        ),
    };
  }

  imagePath(imageId: string, format: ImageFormat): string {
    assertImageId(imageId);
    if (!isImageFormat(format))
      throw new StorageError('InvalidParameterValue', `bad format ${format}`);
    return join(this.imagesDir, `${imageId}.${format}`);
  }

  partialPath(imageId: string): string {
    return join(this.imagesDir, `${assertImageId(imageId)}.partial`);
  }

  /** The stored image of `imageId`, if any. */
  async findImage(imageId: string): Promise<{ path: string; format: ImageFormat } | null> {
    for (const format of ['qcow2', 'raw'] as const) {
      const path = this.imagePath(imageId, format);
      if (await pathExists(path)) return { path, format };
    }
    return null;
  }

  /**
   * Import an image: stream it (hashing as it goes) to <imageId>.partial, validate it with
   * qemu-img (probing the format this once), then rename it to <imageId>.<format>. Any failure
   * removes the partial file. Idempotent: an image already stored is verified and returned.
   */
  async importImage(req: ImportImageRequest): Promise<ImportedImage> {
    assertImageId(req.imageId);
    if (req.format !== undefined && !isImageFormat(req.format)) {
      throw new StorageError(
        'InvalidParameterValue',
        `unsupported format ${JSON.stringify(req.format)}`,
      );
    }
    if (req.expectedSha256 !== undefined && !/^[0-9a-f]{64}$/.test(req.expectedSha256)) {
      throw new StorageError(
        'InvalidParameterValue',
        'expectedSha256 must be 64 lowercase hex digits',
      );
    }
    await mkdir(this.imagesDir, { recursive: true, mode: 0o700 });

    const existing = await this.findImage(req.imageId);
    if (existing) return this.describeStored(existing.path, existing.format, req);

    const partial = this.partialPath(req.imageId);
    try {
      const { sha256, size } = isUrl(req.source)
        ? await this.download(req.source, partial, req)
        : await this.copyLocal(req.source, partial, req);
      if (req.expectedSha256 && sha256 !== req.expectedSha256) {
        throw new StorageError(
          'ChecksumMismatch',
          `sha256 is ${sha256}, expected ${req.expectedSha256}`,
        );
      }
      // The one probe: whatever qemu-img detects is the format from now on ("raw" stays raw).
      const probed = await inspectImage(partial, undefined, this.run);
      const format = assertSafeImage(probed);
      if (req.format && format !== req.format) {
        throw new StorageError('InvalidImage', `image is ${format}, expected ${req.format}`);
      }
      // Look again with the format pinned (and so the same way every later caller will).
      const info = await inspectImage(partial, format, this.run);
      assertSafeImage(info);
      const path = this.imagePath(req.imageId, format);
      await rename(partial, path);
      return {
        path,
        format,
        sizeBytes: size,
        virtualSize: info.virtualSize,
        checksumSha256: sha256,
      };
    } catch (e) {
      await rm(partial, { force: true });
      if (e instanceof StorageError) throw e;
      if ((e as Error).name === 'AbortError') throw e;
      throw new StorageError(
        'ImageDownloadFailed',
        `import of ${req.imageId} failed: ${(e as Error).message}`,
        e,
      );
    }
  }

  private async describeStored(
    path: string,
    format: ImageFormat,
    req: ImportImageRequest,
  ): Promise<ImportedImage> {
    if (req.format && req.format !== format) {
      throw new StorageError(
        'InvalidImage',
        `${req.imageId} is stored as ${format}, expected ${req.format}`,
      );
    }
    const info = await inspectImage(path, format, this.run);
    assertSafeImage(info);
    const { sha256, size } = await sha256File(path);
    if (req.expectedSha256 && sha256 !== req.expectedSha256) {
      throw new StorageError(
        'ChecksumMismatch',
        `stored ${req.imageId} has sha256 ${sha256}, expected ${req.expectedSha256}`,
      );
    }
    req.onProgress?.(size, size);
    return { path, format, sizeBytes: size, virtualSize: info.virtualSize, checksumSha256: sha256 };
  }

  /** Stream `input` to `dest`, hashing and counting, enforcing the size limit, then fsync. */
  private async writeStream(
    input: Readable,
    dest: string,
    totalBytes: number | null,
    limit: ByteLimit,
    req: ImportImageRequest,
  ): Promise<{ sha256: string; size: number }> {
    const hash = createHash('sha256');
    let copied = 0;
    const progress = progressThrottle(req.onProgress, totalBytes);
    const meter = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        copied += chunk.length;
        if (copied > limit.bytes) {
          cb(limit.error(null));
          return;
        }
        hash.update(chunk);
        progress.update(copied);
        cb(null, chunk);
      },
    });
    await pipeline(input, meter, createWriteStream(dest, { mode: 0o600 }), { signal: req.signal });
    const fh = await open(dest, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    progress.done(copied);
    return { sha256: hash.digest('hex'), size: copied };
  }

  private async copyLocal(source: string, dest: string, req: ImportImageRequest) {
    if (!isAbsolute(source) || source.includes('\0')) {
      throw new StorageError(
        'InvalidParameterValue',
        `image source must be an absolute path or an http(s) URL`,
      );
    }
    if (this.allowLocal === null) {
      throw new StorageError(
        'InvalidParameterValue',
        'importing images from local paths is disabled',
      );
    }
    let real: string;
    try {
      real = await realpath(source);
    } catch (e) {
      throw new StorageError('InvalidParameterValue', `image source ${source} does not exist`, e);
    }
    const allowed = await Promise.all(this.allowLocal.map((d) => realpath(d).catch(() => null)));
    if (
      !allowed.some(
        (d) => d !== null && (real === d || real.startsWith(d.endsWith(sep) ? d : d + sep)),
      )
    ) {
      throw new StorageError(
        'InvalidParameterValue',
        `image source ${source} is outside the allowed directories`,
      );
    }
    const st = await stat(real);
    if (!st.isFile())
      throw new StorageError(
        'InvalidParameterValue',
        `image source ${source} is not a regular file`,
      );
    const limit = await this.byteLimit();
    if (st.size > limit.bytes) throw limit.error(st.size);
    return this.writeStream(createReadStream(real), dest, st.size, limit, req);
  }

  private async download(url: string, dest: string, req: ImportImageRequest) {
    const limit = await this.byteLimit();
    const download = await openDownload(url, this.downloadPolicy, req.signal);
    const { response: res } = download;
    try {
      const status = res.statusCode ?? 0;
      if (status < 200 || status > 299) {
        throw new StorageError('ImageDownloadFailed', `GET ${download.url}: HTTP ${status}`);
      }
      const header = res.headers['content-length'];
      const len =
        header === undefined || res.headers['content-encoding'] !== undefined
          ? NaN
          : Number(header);
      const total = Number.isSafeInteger(len) && len >= 0 ? len : null;
      if (total !== null && total > limit.bytes) throw limit.error(total);
      let out: { sha256: string; size: number };
      try {
        out = await this.writeStream(res, dest, total, limit, req);
      } catch (e) {
        // A cut connection says only "aborted": the reason is why we cut it.
        throw download.failure() ?? e;
      }
      if (total !== null && out.size !== total) {
        throw new StorageError(
          'ImageDownloadFailed',
          `GET ${download.url}: got ${out.size} of ${total} bytes`,
        );
      }
      return out;
    } finally {
      download.close();
    }
  }

  /** Remove the image (any format) and a partial import; missing is fine. */
  async removeImage(imageId: string): Promise<void> {
    assertImageId(imageId);
    await Promise.all([
      rm(this.imagePath(imageId, 'qcow2'), { force: true }),
      rm(this.imagePath(imageId, 'raw'), { force: true }),
      rm(this.partialPath(imageId), { force: true }),
    ]);
  }

  /** Every image or partial import file in the store (for the reconciler). */
  async listImageFiles(): Promise<ImageFileEntry[]> {
    let names: string[];
    try {
      names = await readdir(this.imagesDir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    const out: ImageFileEntry[] = [];
    for (const name of names.sort()) {
      const img = IMAGE_FILE_RE.exec(name);
      if (img) {
        out.push({
          imageId: img[1] as string,
          path: join(this.imagesDir, name),
          format: img[2] as ImageFormat,
          partial: false,
        });
        continue;
      }
      const part = PARTIAL_FILE_RE.exec(name);
      if (part)
        out.push({
          imageId: part[1] as string,
          path: join(this.imagesDir, name),
          format: null,
          partial: true,
        });
    }
    return out;
  }
}

// ---------------------------------------------------------------------------------------------
// root disks

export interface EnsureOverlayRequest {
  path: string;
  backingPath: string;
  backingFormat: ImageFormat;
  /** Virtual size of the overlay; default the backing image's. Never below it. */
  sizeBytes?: number;
  /**
   * The backing image's virtual size when the caller already knows it from an image this store
   * imported and validated (image files never change afterwards): skips re-inspecting the base,
   * which keeps a launch free of qemu-img runs.
   */
  validatedBaseVirtualSize?: number;
}

/**
 * A qcow2 copy-on-write overlay on a base image (an instance's root disk), written in-process
 * (renderQcow2Image: the bytes qemu-img create writes). Created under a temp
 * name and hard-linked into place, so a crash never leaves a half-written file at `path` and a
 * concurrent call never replaces a disk already in use. Idempotent: an existing overlay on the
 * same backing file is fine ('exists'); one on another backing file is an OverlayMismatch.
 * An existing overlay is never resized.
 */
export async function ensureOverlay(
  req: EnsureOverlayRequest,
  run: CommandRunner = hostRun,
): Promise<{ created: boolean; virtualSize: number }> {
  qemuImgCreateOverlayArgs(req.path, req.backingPath, req.backingFormat, req.sizeBytes); // validates
  if (req.path === req.backingPath) {
    throw new StorageError('InvalidParameterValue', 'overlay path and backing path are the same');
  }

  const checkExisting = async () => {
    const info = await inspectImage(req.path, 'qcow2', run);
    if (
      info.backingFile !== req.backingPath ||
      (info.backingFormat ?? req.backingFormat) !== req.backingFormat
    ) {
      throw new StorageError(
        'OverlayMismatch',
        `${req.path} exists with backing ${JSON.stringify(info.backingFile)} (${info.backingFormat ?? '?'}), ` +
          `expected ${req.backingPath} (${req.backingFormat})`,
      );
    }
    if (info.dataFile !== null)
      throw new StorageError('OverlayMismatch', `${req.path} has a data file`);
    return { created: false, virtualSize: info.virtualSize };
  };

  if (await pathExists(req.path)) return checkExisting();

  if (!(await pathExists(req.backingPath))) {
    throw new StorageError(
      'InvalidParameterValue',
      `backing image ${req.backingPath} does not exist`,
    );
  }
  // Our own, validated image, but check anyway: an overlay must never chain to a backing file
  // or data file, and its size must not cut the image short.
  let base: { virtualSize: number };
  if (req.validatedBaseVirtualSize !== undefined) {
    base = { virtualSize: req.validatedBaseVirtualSize };
  } else {
    const info = await inspectImage(req.backingPath, req.backingFormat, run);
    assertSafeImage(info);
    base = info;
  }
  if (req.sizeBytes !== undefined && req.sizeBytes < base.virtualSize) {
    throw new StorageError(
      'InvalidParameterValue',
      `root disk size ${req.sizeBytes} is smaller than the image (${base.virtualSize} bytes)`,
    );
  }

  // The file qemu-img create would write, written here: no process per launch.
  const bytes = renderQcow2Image({
    virtualSize: req.sizeBytes ?? base.virtualSize,
    backingFile: req.backingPath,
    backingFormat: req.backingFormat,
  });
  const tmp = `${req.path}.tmp-${process.pid}-${Math.random().toString(16).slice(2, 10)}`;
  try {
    await writeDurably(tmp, bytes);
    try {
      await link(tmp, req.path); // fails with EEXIST instead of replacing a concurrent winner
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      return checkExisting();
    }
    return { created: true, virtualSize: req.sizeBytes ?? base.virtualSize };
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}

/** Create `path` (it must not exist) with `bytes`, flushed to disk before it is closed. */
async function writeDurably(path: string, bytes: Buffer): Promise<void> {
  const fh = await open(path, 'wx', 0o600);
  try {
    await fh.writeFile(bytes);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Remove a file; missing is fine. Refuses relative paths and directories. */
export async function removeFile(path: string): Promise<void> {
  if (!isAbsolute(path) || path.split('/').includes('..')) {
    throw new StorageError('InvalidParameterValue', `refusing to remove ${JSON.stringify(path)}`);
  }
  try {
    await unlink(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return;
    if (code === 'EISDIR' || code === 'EPERM') {
      throw new StorageError('InvalidParameterValue', `refusing to remove ${path}: not a file`, e);
    }
    throw e;
  }
}
