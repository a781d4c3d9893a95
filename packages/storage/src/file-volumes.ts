import { chmod, link, mkdir, readdir, stat, unlink } from 'node:fs/promises';
import { dirname, isAbsolute, join } from 'node:path';
import { run as hostRun, type CommandRunner, fsyncPath, pathExists } from '@minicloud/host';
import { StorageError } from './errors.js';
import { inspectImage, QEMU_IMG_INFO_LIMITS } from './qemu-img.js';
import {
  assertSnapshotId,
  assertVolumeId,
  assertVolumeSize,
  commandFailure,
  DEFAULT_MAX_VOLUME_BYTES,
  isImageLockError,
  type CreateVolumeOptions,
  type VolumeDriver,
  type VolumeLocation,
} from './volumes.js';

/**
 * Volumes as qcow2 files:
 *
 *   <volumesDir>/<vol-id>.qcow2       a volume (sparse: preallocation=off)
 *   <snapshotsDir>/<snap-id>.qcow2    a snapshot: a standalone qcow2 (no backing file)
 *   *.qcow2.tmp-<pid>-<rand>          work in progress (or left by a crash: removeStalePartials)
 *   <snap-id>.qcow2.partial           a live snapshot (hypervisor backup job) in progress
 *
 * Files appear only complete: written under a temp name, fsynced, hard-linked into place (link
 * fails with EEXIST instead of replacing a concurrent winner), temp removed.
 *
 * A volume from a snapshot is an independent copy (`qemu-img convert`), not an overlay with the
 * snapshot as backing file: a snapshot can be deleted at any time (as on EBS), volumes never
 * share state, and no qcow2 chain reaches a guest. The cost is a copy of the snapshot's
 * allocated data at creation (convert skips unallocated and zero clusters); see the report in
 * the conformance/timing test.
 *
 * Files are 0600 (guest data): libvirt chowns a disk to the QEMU user while attached and
 * restores the owner afterwards. The directories must let that user pass (0710, group QEMU's,
 * made by the server at start; 0700 when this driver makes them itself).
 *
 * Locks: QEMU holds a write lock on an attached image, so qemu-img's create/convert/resize/info
 * (without -U) fail on a volume in use; that is how "in use by a running guest" is detected
 * (VolumeInUse).
 */

export interface FileVolumeDriverOptions {
  volumesDir: string;
  snapshotsDir: string;
  /** Largest volume accepted (default 16 TiB). */
  maxVolumeBytes?: number;
  run?: CommandRunner;
}

const VOLUME_FILE_RE = /^(vol-[0-9a-f]{17})\.qcow2$/;
const SNAPSHOT_FILE_RE = /^(snap-[0-9a-f]{17})\.qcow2$/;
const PARTIAL_FILE_RE = /^(?:vol|snap)-[0-9a-f]{17}\.qcow2\.(?:tmp-[0-9]+-[0-9a-f]+|partial)$/;

// ---------------------------------------------------------------------------------------------
// qemu-img argv (pure, exported for tests)

function assertPath(path: string, what: string): void {
  if (
    typeof path !== 'string' ||
    !path.startsWith('/') ||
    path.includes('\0') ||
    path.split('/').includes('..')
  ) {
    throw new StorageError('InvalidParameterValue', `${what} must be an absolute path: ${path}`);
  }
}

/** argv for a new empty sparse qcow2 volume. */
export function qemuImgCreateVolumeArgs(path: string, sizeBytes: number): string[] {
  assertPath(path, 'volume path');
  assertVolumeSize(sizeBytes, Number.MAX_SAFE_INTEGER);
  return ['create', '-q', '-f', 'qcow2', '-o', 'preallocation=off', path, String(sizeBytes)];
}

/** argv for a standalone qcow2 copy of a qcow2 image (no backing file in the result). */
export function qemuImgConvertArgs(source: string, dest: string): string[] {
  assertPath(source, 'source path');
  assertPath(dest, 'destination path');
  return ['convert', '-q', '-f', 'qcow2', '-O', 'qcow2', '-o', 'preallocation=off', source, dest];
}

/** argv for growing a qcow2 image (qemu-img refuses to shrink without --shrink). */
export function qemuImgResizeArgs(path: string, sizeBytes: number): string[] {
  assertPath(path, 'volume path');
  assertVolumeSize(sizeBytes, Number.MAX_SAFE_INTEGER);
  return ['resize', '-q', '-f', 'qcow2', path, String(sizeBytes)];
}

/**
 * argv (for prlimit) of `qemu-img info` WITHOUT -U: it takes the image's shared lock, so it fails
 * while a running QEMU has the image open for writing. Used to refuse deleting a volume in use.
 */
export function qemuImgLockProbeArgs(path: string): string[] {
  assertPath(path, 'volume path');
  return [
    `--as=${QEMU_IMG_INFO_LIMITS.addressSpaceBytes}`,
    `--cpu=${QEMU_IMG_INFO_LIMITS.cpuSeconds}`,
    'qemu-img',
    'info',
    '--output=json',
    '-f',
    'qcow2',
    path,
  ];
}

// ---------------------------------------------------------------------------------------------

async function unlinkIfExists(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}

export class FileVolumeDriver implements VolumeDriver {
  readonly kind = 'file' as const;
  readonly liveSnapshots = 'hypervisor-backup' as const;
  readonly volumesDir: string;
  readonly snapshotsDir: string;
  private readonly maxVolumeBytes: number;
  private readonly run: CommandRunner;

  constructor(options: FileVolumeDriverOptions) {
    for (const [what, dir] of [
      ['volumesDir', options.volumesDir],
      ['snapshotsDir', options.snapshotsDir],
    ] as const) {
      if (typeof dir !== 'string' || !isAbsolute(dir) || dir.split('/').includes('..')) {
        throw new StorageError('InvalidParameterValue', `${what} must be absolute: ${dir}`);
      }
    }
    this.volumesDir = options.volumesDir;
    this.snapshotsDir = options.snapshotsDir;
    this.maxVolumeBytes = options.maxVolumeBytes ?? DEFAULT_MAX_VOLUME_BYTES;
    this.run = options.run ?? hostRun;
  }

  /** The file of a volume (whether or not it exists). */
  volumePath(volumeId: string): string {
    return join(this.volumesDir, `${assertVolumeId(volumeId)}.qcow2`);
  }

  /**
   * The file of a snapshot (whether or not it exists). A live snapshot is taken by the hypervisor
   * straight into this path: `hypervisor.backupDisk(domain, target, snapshotPath(id))`, which
   * writes `<path>.partial` and renames it on success (call prepareLiveSnapshot first).
   */
  snapshotPath(snapshotId: string): string {
    return join(this.snapshotsDir, `${assertSnapshotId(snapshotId)}.qcow2`);
  }

  /**
   * Before a live snapshot through the hypervisor: checks the volume exists
   * (InvalidVolume.NotFound), makes sure the snapshots directory exists, and says whether the
   * snapshot is already there (then there is nothing to do). Note: QEMU runs in its own mount
   * namespace, so snapshotsDir must be on a file system that was mounted before the guest started.
   */
  async prepareLiveSnapshot(
    volumeId: string,
    snapshotId: string,
  ): Promise<{ path: string; exists: boolean }> {
    const path = this.snapshotPath(snapshotId);
    if (await pathExists(path)) return { path, exists: true };
    if (!(await pathExists(this.volumePath(volumeId)))) {
      throw new StorageError('InvalidVolume.NotFound', `volume ${volumeId} does not exist`);
    }
    await mkdir(this.snapshotsDir, { recursive: true, mode: 0o700 });
    return { path, exists: false };
  }

  async create(
    volumeId: string,
    sizeBytes: number,
    opts: CreateVolumeOptions = {},
  ): Promise<VolumeLocation> {
    const path = this.volumePath(volumeId);
    assertVolumeSize(sizeBytes, this.maxVolumeBytes);
    if (opts.fromSnapshotId !== undefined) assertSnapshotId(opts.fromSnapshotId);

    const checkExisting = async (): Promise<VolumeLocation | null> => {
      const loc = await this.locate(volumeId);
      if (loc && loc.sizeBytes !== sizeBytes) {
        throw new StorageError(
          'IdempotentParameterMismatch',
          `volume ${volumeId} exists with size ${loc.sizeBytes}, not ${sizeBytes}`,
        );
      }
      return loc;
    };
    const existing = await checkExisting();
    if (existing) return existing;

    let snapshot: VolumeLocation | null = null;
    if (opts.fromSnapshotId !== undefined) {
      snapshot = await this.locateSnapshot(opts.fromSnapshotId);
      if (!snapshot) {
        throw new StorageError(
          'InvalidSnapshot.NotFound',
          `snapshot ${opts.fromSnapshotId} does not exist`,
        );
      }
      if (sizeBytes < snapshot.sizeBytes) {
        throw new StorageError(
          'InvalidParameterValue',
          `volume size ${sizeBytes} is smaller than snapshot ${opts.fromSnapshotId} (${snapshot.sizeBytes} bytes)`,
        );
      }
    }

    await mkdir(this.volumesDir, { recursive: true, mode: 0o700 });
    const made = await this.writeThenLink(path, async (tmp) => {
      if (snapshot) {
        await this.qemuImg(qemuImgConvertArgs(snapshot.path, tmp), `copying ${snapshot.path}`);
        if (sizeBytes > snapshot.sizeBytes) {
          await this.qemuImg(qemuImgResizeArgs(tmp, sizeBytes), `growing ${tmp}`);
        }
      } else {
        await this.qemuImg(qemuImgCreateVolumeArgs(tmp, sizeBytes), `creating ${path}`);
      }
    });
    if (!made) {
      const winner = await checkExisting(); // created concurrently
      if (winner) return winner;
    }
    return { path, format: 'qcow2', diskType: 'file', sizeBytes };
  }

  async delete(volumeId: string): Promise<void> {
    const path = this.volumePath(volumeId);
    if (!(await pathExists(path))) return;
    // Unlinking a file QEMU has open "works" (the guest keeps writing to an orphan inode) and
    // silently loses the data: refuse instead.
    try {
      await this.run('prlimit', qemuImgLockProbeArgs(path), { timeoutMs: 60_000 });
    } catch (e) {
      if (isImageLockError(e)) {
        throw new StorageError('VolumeInUse', `volume ${volumeId} is in use by a running guest`, e);
      }
      // A damaged file is still ours to delete.
    }
    await unlinkIfExists(path);
  }

  async resize(volumeId: string, newSizeBytes: number): Promise<void> {
    assertVolumeSize(newSizeBytes, this.maxVolumeBytes);
    const loc = await this.locate(volumeId);
    if (!loc) throw new StorageError('InvalidVolume.NotFound', `volume ${volumeId} does not exist`);
    if (newSizeBytes < loc.sizeBytes) {
      throw new StorageError(
        'VolumeShrinkNotSupported',
        `volume ${volumeId} is ${loc.sizeBytes} bytes; it cannot shrink to ${newSizeBytes}`,
      );
    }
    if (newSizeBytes === loc.sizeBytes) return;
    await this.qemuImg(qemuImgResizeArgs(loc.path, newSizeBytes), `resizing ${volumeId}`);
  }

  async snapshotOffline(volumeId: string, snapshotId: string): Promise<void> {
    const dest = this.snapshotPath(snapshotId);
    const source = this.volumePath(volumeId);
    if (await pathExists(dest)) return;
    if (!(await pathExists(source))) {
      throw new StorageError('InvalidVolume.NotFound', `volume ${volumeId} does not exist`);
    }
    await mkdir(this.snapshotsDir, { recursive: true, mode: 0o700 });
    // convert takes the source's shared lock: fails (VolumeInUse) while a running guest has it.
    await this.writeThenLink(dest, (tmp) =>
      this.qemuImg(qemuImgConvertArgs(source, tmp), `snapshot of ${volumeId}`),
    );
  }

  async deleteSnapshot(snapshotId: string): Promise<void> {
    const path = this.snapshotPath(snapshotId);
    await unlinkIfExists(path);
    await unlinkIfExists(`${path}.partial`);
  }

  async locate(volumeId: string): Promise<VolumeLocation | null> {
    return this.describe(this.volumePath(volumeId));
  }

  async locateSnapshot(snapshotId: string): Promise<VolumeLocation | null> {
    return this.describe(this.snapshotPath(snapshotId));
  }

  async prepareForAttach(volumeId: string): Promise<VolumeLocation> {
    const loc = await this.locate(volumeId);
    if (!loc) throw new StorageError('InvalidVolume.NotFound', `volume ${volumeId} does not exist`);
    return loc;
  }

  async listVolumes(): Promise<string[]> {
    return listIds(this.volumesDir, VOLUME_FILE_RE);
  }

  async listSnapshots(): Promise<string[]> {
    return listIds(this.snapshotsDir, SNAPSHOT_FILE_RE);
  }

  /**
   * Remove temp files older than `maxAgeMs` that a crash left behind (for the reconciler; a
   * live-snapshot `.partial` of a backup job still running must be younger than maxAgeMs).
   * Returns the paths removed.
   */
  async removeStalePartials(maxAgeMs: number, now = Date.now()): Promise<string[]> {
    const removed: string[] = [];
    for (const dir of [this.volumesDir, this.snapshotsDir]) {
      let names: string[];
      try {
        names = await readdir(dir);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw e;
      }
      for (const name of names.filter((n) => PARTIAL_FILE_RE.test(n))) {
        const path = join(dir, name);
        try {
          if (now - (await stat(path)).mtimeMs < maxAgeMs) continue;
          await unlink(path);
          removed.push(path);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
        }
      }
    }
    return removed.sort();
  }

  // -------------------------------------------------------------------------------------------

  private async describe(path: string): Promise<VolumeLocation | null> {
    if (!(await pathExists(path))) return null;
    let info;
    try {
      info = await inspectImage(path, 'qcow2', this.run); // -U: works while attached
    } catch (e) {
      if (!(await pathExists(path))) return null; // deleted meanwhile
      throw e;
    }
    return { path, format: 'qcow2', diskType: 'file', sizeBytes: info.virtualSize };
  }

  private async qemuImg(args: string[], what: string): Promise<void> {
    try {
      // Copies of large volumes take a while; nothing here should take longer than an hour.
      await this.run('qemu-img', args, { timeoutMs: 3_600_000 });
    } catch (e) {
      throw commandFailure(what, e);
    }
  }

  /**
   * Run `write(tmp)`, fsync, chmod 0600 and hard-link tmp to `path`. Always removes tmp.
   * false when `path` appeared meanwhile (a concurrent call won; ours is discarded).
   */
  private async writeThenLink(path: string, write: (tmp: string) => Promise<void>) {
    const tmp = `${path}.tmp-${process.pid}-${Math.random().toString(16).slice(2, 10)}`;
    try {
      await write(tmp);
      await chmod(tmp, 0o600);
      await fsyncPath(tmp);
      try {
        await link(tmp, path);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
        throw commandFailure(`linking ${path}`, e);
      }
      await fsyncPath(dirname(path));
      return true;
    } finally {
      await unlinkIfExists(tmp).catch(() => undefined);
    }
  }
}

async function listIds(dir: string, re: RegExp): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const ids: string[] = [];
  for (const name of names) {
    const m = re.exec(name);
    if (m) ids.push(m[1] as string);
  }
  return ids.sort();
}
