import { createHash } from 'node:crypto';

/** A short fingerprint of the admin key: enough to tell keys apart, useless to authenticate. */
export function adminKeyFingerprint(key: string): string {
  return `sha256:${createHash('sha256').update(key).digest('base64url').slice(0, 12)}`;
}

/**
 * The start-up line about the admin key. The key itself is printed only when it was just
 * generated (the one time its owner needs to see it); later starts say where it is, so logs
 * collected from every start never carry it.
 */
export function adminKeyBanner(
  admin: { key: string; source: 'environment' | 'file' | 'generated' },
  file: string,
): string {
  const fingerprint = adminKeyFingerprint(admin.key);
  switch (admin.source) {
    case 'generated':
      return `admin API key generated and stored in ${file} (mode 0600): ${admin.key}`;
    case 'file':
      return `admin API key: in ${file} (${fingerprint})`;
    case 'environment':
      return `admin API key: from MINICLOUD_ADMIN_KEY (${fingerprint})`;
  }
}
