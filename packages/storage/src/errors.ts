/** Errors of the storage driver; `code` is EC2-like and stable, `cause` keeps the host error. */
export type StorageErrorCode =
  | 'InvalidParameterValue'
  | 'InvalidImage'
  | 'ImageDownloadFailed'
  | 'ImageTooLarge'
  | 'ChecksumMismatch'
  | 'OverlayMismatch'
  | 'StorageCommandFailed';

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
