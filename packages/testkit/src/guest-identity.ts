/**
 * Guests that say who they are: user-data starts a busybox nc on IDENTITY_PORT answering the
 * instance id, so a probe through an address (an Elastic IP, a rule) knows which guest answered.
 */
export const IDENTITY_PORT = 7070;
export const INSTANCE_ID_FILE = '/var/lib/cloud/data/instance-id';

/** The user-data script (base64, as the API takes it); `before` runs first (e.g. sysctls). */
export function identityUserData(before: string[] = []): string {
  const script = [
    '#!/bin/sh',
    ...before,
    `setsid nc -ll -p ${IDENTITY_PORT} -e cat ${INSTANCE_ID_FILE} </dev/null >/dev/null 2>&1 &`,
    '',
  ].join('\n');
  return Buffer.from(script).toString('base64');
}
