import { run as hostRun, type CommandRunner } from '@minicloud/host';
import { StorageError } from './errors.js';

/**
 * qemu-img, the careful way. Images can be hostile: a qcow2 with a backing file or an external
 * data file makes QEMU open (and hand to the guest) whatever host file it names, and format
 * probing lets a raw image that starts with a qcow2 header turn into one. So:
 * - `qemu-img info` runs under prlimit (1 GiB address space, 30 s CPU), as OpenStack does for
 *   untrusted images, with -U (no lock: an image in use by a guest can still be inspected);
 * - the format is probed at most once, on import; after that every call passes -f;
 * - assertSafeImage refuses backing files, data files, encryption, corruption and any format
 *   other than qcow2/raw.
 */

export type ImageFormat = 'qcow2' | 'raw';
export const IMAGE_FORMATS: readonly ImageFormat[] = ['qcow2', 'raw'];

export interface ImageInfo {
  /** As qemu-img reports it (may be something other than qcow2/raw before assertSafeImage). */
  format: string;
  virtualSize: number;
  actualSize: number;
  backingFile: string | null;
  backingFormat: string | null;
  dataFile: string | null;
  encrypted: boolean;
  corrupt: boolean;
}

export const QEMU_IMG_INFO_LIMITS = { addressSpaceBytes: 1024 * 1024 * 1024, cpuSeconds: 30 };

export function isImageFormat(value: unknown): value is ImageFormat {
  return value === 'qcow2' || value === 'raw';
}

function assertAbsolutePath(path: string, what: string): void {
  if (
    typeof path !== 'string' ||
    !path.startsWith('/') ||
    path.includes('\0') ||
    path.split('/').includes('..')
  ) {
    throw new StorageError(
      'InvalidParameterValue',
      `${what} must be an absolute path without '..': ${JSON.stringify(path)}`,
    );
  }
}

/** argv for `qemu-img info` (run under prlimit). Pure, exported for tests. */
export function qemuImgInfoArgs(path: string, format?: ImageFormat): string[] {
  assertAbsolutePath(path, 'image path');
  if (format !== undefined && !isImageFormat(format)) {
    throw new StorageError(
      'InvalidParameterValue',
      `unsupported image format ${JSON.stringify(format)}`,
    );
  }
  return [
    `--as=${QEMU_IMG_INFO_LIMITS.addressSpaceBytes}`,
    `--cpu=${QEMU_IMG_INFO_LIMITS.cpuSeconds}`,
    'qemu-img',
    'info',
    '--output=json',
    '-U',
    ...(format ? ['-f', format] : []),
    path,
  ];
}

/** argv for creating a qcow2 overlay on a backing image. Pure, exported for tests. */
export function qemuImgCreateOverlayArgs(
  path: string,
  backingPath: string,
  backingFormat: ImageFormat,
  sizeBytes?: number,
): string[] {
  assertAbsolutePath(path, 'overlay path');
  assertAbsolutePath(backingPath, 'backing path');
  if (!isImageFormat(backingFormat)) {
    throw new StorageError(
      'InvalidParameterValue',
      `unsupported backing format ${JSON.stringify(backingFormat)}`,
    );
  }
  if (sizeBytes !== undefined && (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0)) {
    throw new StorageError('InvalidParameterValue', `invalid size ${JSON.stringify(sizeBytes)}`);
  }
  return [
    'create',
    '-q',
    '-f',
    'qcow2',
    '-b',
    backingPath,
    '-F',
    backingFormat,
    path,
    ...(sizeBytes !== undefined ? [String(sizeBytes)] : []),
  ];
}

/** Parse `qemu-img info --output=json`. Pure, exported for tests. */
export function parseQemuImgInfo(json: string): ImageInfo {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(json) as Record<string, unknown>;
  } catch (e) {
    throw new StorageError('InvalidImage', `qemu-img info printed invalid JSON`, e);
  }
  if (typeof raw !== 'object' || raw === null || typeof raw.format !== 'string') {
    throw new StorageError('InvalidImage', 'qemu-img info printed no format');
  }
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
  const str = (v: unknown) => (typeof v === 'string' && v !== '' ? v : null);
  const specific = raw['format-specific'] as { data?: Record<string, unknown> } | undefined;
  const data = specific?.data ?? {};
  return {
    format: raw.format,
    virtualSize: num(raw['virtual-size']),
    actualSize: num(raw['actual-size']),
    backingFile: str(raw['full-backing-filename']) ?? str(raw['backing-filename']),
    backingFormat: str(raw['backing-filename-format']),
    dataFile: str(data['data-file']),
    encrypted: raw.encrypted === true || data.encrypt !== undefined,
    corrupt: data.corrupt === true,
  };
}

/**
 * Throws StorageError('InvalidImage') unless the image is a plain, self-contained qcow2 or raw
 * image. Returns the format, narrowed.
 */
export function assertSafeImage(info: ImageInfo): ImageFormat {
  if (!isImageFormat(info.format)) {
    throw new StorageError(
      'InvalidImage',
      `image format ${JSON.stringify(info.format)} is not supported (qcow2, raw)`,
    );
  }
  if (info.backingFile !== null) {
    throw new StorageError(
      'InvalidImage',
      `image has a backing file (${JSON.stringify(info.backingFile)}): refused`,
    );
  }
  if (info.dataFile !== null) {
    throw new StorageError(
      'InvalidImage',
      `image has an external data file (${JSON.stringify(info.dataFile)}): refused`,
    );
  }
  if (info.encrypted) throw new StorageError('InvalidImage', 'encrypted images are not supported');
  if (info.corrupt) throw new StorageError('InvalidImage', 'image is marked corrupt');
  if (info.virtualSize <= 0) throw new StorageError('InvalidImage', 'image has no virtual size');
  return info.format;
}

/**
 * `qemu-img info` of `path`. Pass the format whenever it is known; without it qemu-img probes,
 * which is only acceptable for the first look at a freshly imported file.
 */
export async function inspectImage(
  path: string,
  format?: ImageFormat,
  run: CommandRunner = hostRun,
): Promise<ImageInfo> {
  const args = qemuImgInfoArgs(path, format);
  let stdout: string;
  try {
    ({ stdout } = await run('prlimit', args, { timeoutMs: 60_000 }));
  } catch (e) {
    throw new StorageError(
      'InvalidImage',
      `qemu-img info ${path} failed: ${(e as Error).message}`,
      e,
    );
  }
  return parseQemuImgInfo(stdout);
}
