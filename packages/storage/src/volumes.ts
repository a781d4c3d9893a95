import { HostCommandError } from '@minicloud/host';
import { StorageError } from './errors.js';

/**
 * EBS-style block volumes and snapshots: one driver interface, two drivers.
 *
 * - FileVolumeDriver (file-volumes.ts): qcow2 files under the data directory. Runs anywhere.
 * - LvmVolumeDriver (lvm-volumes.ts): thin logical volumes in a thin pool. The production
 *   backend on a real KVM host (needs device-mapper).
 *
 * Every method is idempotent (create twice with the same size is fine, deleting something missing
 * is fine) and every id is validated before it reaches a path or a command. Drivers know nothing
 * about guests: attaching, live resize and live (file) snapshots go through the hypervisor
 * driver, with the paths/locations these drivers hand out.
 */

export type VolumeDriverKind = 'file' | 'lvm';

/** Where a volume (or snapshot) lives, in the terms libvirt needs to attach it. */
export interface VolumeLocation {
  /** Absolute path: a qcow2 file, or the LV's device node (/dev/VG/LV). */
  path: string;
  format: 'qcow2' | 'raw';
  /** libvirt `<disk type=...>`: 'file' for files (`<source file>`), 'block' for LVs (`<source dev>`). */
  diskType: 'file' | 'block';
  /** Virtual size in bytes (what the guest sees). */
  sizeBytes: number;
}

export interface CreateVolumeOptions {
  /**
   * Create the volume with the snapshot's data. The size must be at least the snapshot's (a
   * bigger volume is grown after the copy; the guest's file system is not).
   */
  fromSnapshotId?: string;
}

/**
 * How a crash-consistent snapshot of a volume attached to a RUNNING guest is taken:
 * - 'driver': snapshotOffline() is safe while attached too (LVM: a thin snapshot is atomic at
 *   the block layer);
 * - 'hypervisor-backup': the hypervisor copies the disk out of the running guest
 *   (`LibvirtHypervisor.backupDisk(domain, target, driver.snapshotPath(snapshotId))`);
 *   snapshotOffline() refuses a volume in use (VolumeInUse).
 */
export type LiveSnapshotMethod = 'driver' | 'hypervisor-backup';

export interface VolumeDriver {
  readonly kind: VolumeDriverKind;
  readonly liveSnapshots: LiveSnapshotMethod;
  /**
   * Create an empty volume, or one holding a snapshot's data. Idempotent: an existing volume of
   * the same size is returned as is; another size is IdempotentParameterMismatch.
   * InvalidSnapshot.NotFound when the snapshot does not exist.
   */
  create(volumeId: string, sizeBytes: number, opts?: CreateVolumeOptions): Promise<VolumeLocation>;
  /** Remove the volume; missing is fine. VolumeInUse while a running guest has it open. */
  delete(volumeId: string): Promise<void>;
  /**
   * Grow the volume (same size: nothing to do). Smaller: VolumeShrinkNotSupported.
   * File volumes attached to a running guest must be grown through the hypervisor
   * (`resizeDisk`, QEMU owns the file): here that is VolumeInUse. LVs can be grown here while
   * attached; then tell QEMU with `resizeDisk` so the guest sees the new size.
   */
  resize(volumeId: string, newSizeBytes: number): Promise<void>;
  /**
   * Point-in-time copy of the volume as snapshot `snapshotId`. Idempotent (an existing snapshot
   * is kept). For the file driver the volume must not be in use by a running guest
   * (VolumeInUse); see liveSnapshots.
   */
  snapshotOffline(volumeId: string, snapshotId: string): Promise<void>;
  /** Remove the snapshot; missing is fine. Volumes created from it are independent copies. */
  deleteSnapshot(snapshotId: string): Promise<void>;
  /** null when the volume does not exist. */
  locate(volumeId: string): Promise<VolumeLocation | null>;
  /** null when the snapshot does not exist. (An LVM snapshot's device node exists only while active.) */
  locateSnapshot(snapshotId: string): Promise<VolumeLocation | null>;
  /**
   * Make the volume usable by a guest and return where it is (LVM: activate the LV; file: check it
   * exists). InvalidVolume.NotFound when missing. Call before attaching.
   */
  prepareForAttach(volumeId: string): Promise<VolumeLocation>;
  /** Ids of every volume this driver holds (sorted). */
  listVolumes(): Promise<string[]>;
  /** Ids of every snapshot this driver holds (sorted). */
  listSnapshots(): Promise<string[]>;
}

// ---------------------------------------------------------------------------------------------
// ids and sizes

export const VOLUME_ID_RE = /^vol-[0-9a-f]{17}$/;
export const SNAPSHOT_ID_RE = /^snap-[0-9a-f]{17}$/;

/** Largest volume by default (EBS gp3: 16 TiB). */
export const DEFAULT_MAX_VOLUME_BYTES = 16 * 1024 ** 4;

export function assertVolumeId(volumeId: string): string {
  if (typeof volumeId !== 'string' || !VOLUME_ID_RE.test(volumeId)) {
    throw new StorageError(
      'InvalidParameterValue',
      `invalid volume id ${JSON.stringify(volumeId)}`,
    );
  }
  return volumeId;
}

export function assertSnapshotId(snapshotId: string): string {
  if (typeof snapshotId !== 'string' || !SNAPSHOT_ID_RE.test(snapshotId)) {
    throw new StorageError(
      'InvalidParameterValue',
      `invalid snapshot id ${JSON.stringify(snapshotId)}`,
    );
  }
  return snapshotId;
}

/** A size in bytes: a positive safe integer, a multiple of 512, at most `maxBytes`. */
export function assertVolumeSize(sizeBytes: number, maxBytes = DEFAULT_MAX_VOLUME_BYTES): number {
  if (
    typeof sizeBytes !== 'number' ||
    !Number.isSafeInteger(sizeBytes) ||
    sizeBytes <= 0 ||
    sizeBytes % 512 !== 0
  ) {
    throw new StorageError(
      'InvalidParameterValue',
      `volume size must be a positive multiple of 512 bytes, got ${JSON.stringify(sizeBytes)}`,
    );
  }
  if (sizeBytes > maxBytes) {
    throw new StorageError(
      'InvalidParameterValue',
      `volume size ${sizeBytes} is above the maximum of ${maxBytes} bytes`,
    );
  }
  return sizeBytes;
}

/** The text of what failed on the host (stderr for command errors). */
export function hostErrorText(e: unknown): string {
  if (e instanceof HostCommandError) return `${e.stderr}`.trim() || e.message;
  return e instanceof Error ? e.message : String(e);
}

/** qemu-img's "Failed to get "write" lock / Is another process using the image?" */
export function isImageLockError(e: unknown): boolean {
  return /Failed to get .*lock|Is another process using the image/i.test(hostErrorText(e));
}

export function isNoSpaceError(e: unknown): boolean {
  const text = hostErrorText(e);
  const errno = (e as NodeJS.ErrnoException | undefined)?.code;
  return errno === 'ENOSPC' || /No space left on device|ENOSPC/i.test(text);
}

/** StorageError for a failed host command: VolumeInUse / InsufficientVolumeCapacity / generic. */
export function commandFailure(what: string, e: unknown): StorageError {
  if (e instanceof StorageError) return e;
  const text = hostErrorText(e);
  if (isImageLockError(e)) {
    return new StorageError('VolumeInUse', `${what}: the image is in use (${text})`, e);
  }
  if (isNoSpaceError(e)) {
    return new StorageError('InsufficientVolumeCapacity', `${what}: ${text}`, e);
  }
  return new StorageError('StorageCommandFailed', `${what}: ${text}`, e);
}
