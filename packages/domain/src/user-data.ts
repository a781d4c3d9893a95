/**
 * The one limit on user data, in bytes after base64 decoding (EC2's: 16 KiB). The API refuses
 * more and the seed builder (packages/cloudinit) holds to the same number, so an accepted launch
 * never fails in the worker for its size. MINICLOUD_MAX_USER_DATA_BYTES may only lower it.
 */
export const MAX_USER_DATA_BYTES = 16 * 1024;
