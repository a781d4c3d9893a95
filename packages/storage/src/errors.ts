/** Errors of the storage driver; `code` is EC2-like and stable, `cause` keeps the host error. */
export type StorageErrorCode =
  | 'InvalidParameterValue'
  | 'InvalidImage'
  | 'ImageDownloadFailed'
  | 'ImageTooLarge'
  /** An image URL (or a redirect, or an address its name resolves to) that may not be fetched. */
  | 'ImageSourceForbidden'
  /** The images directory has not enough free space for the image. */
  | 'InsufficientImageCapacity'
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
