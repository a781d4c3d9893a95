/** Errors of the storage driver; `code` is EC2-like and stable, `cause` keeps the host error. */
export type StorageErrorCode =
  | 'InvalidParameterValue'
  | 'InvalidImage'
  | 'ImageDownloadFailed'
  | 'ImageTooLarge'
  | 'ChecksumMismatch'
  | 'OverlayMismatch'
  | 'StorageCommandFailed'
  // volumes and snapshots (volumes.ts, file-volumes.ts, lvm-volumes.ts)
  | 'InvalidVolume.NotFound'
  | 'InvalidSnapshot.NotFound'
  /** create() again with another size than the existing volume's. */
  | 'IdempotentParameterMismatch'
  /** resize() to a smaller size: volumes only grow (as on EBS). */
  | 'VolumeShrinkNotSupported'
  /** The volume is open by a running guest (QEMU's image lock, or an open LV). */
  | 'VolumeInUse'
  /** No space left: the file system under the volumes, or the LVM thin pool / volume group. */
  | 'InsufficientVolumeCapacity';

export class StorageError extends Error {
  constructor(
    readonly code: StorageErrorCode,
    message: string,
    override readonly cause?: unknown,
  ) {
    super(message);
    this.name = 'StorageError';
  }
}
