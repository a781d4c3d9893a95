import { randomBytes } from 'node:crypto';
import { readFileIfExists, writeFileAtomic } from '@minicloud/host';

/**
 * The admin API key: MINICLOUD_ADMIN_KEY if set, otherwise the one stored under the data
 * directory (mode 0600), generated on first start.
 */
export async function ensureAdminKey(
  fromEnv: string | undefined,
  file: string,
): Promise<{ key: string; source: 'environment' | 'file' | 'generated' }> {
  if (fromEnv) return { key: fromEnv, source: 'environment' };
  const stored = (await readFileIfExists(file))?.trim();
  if (stored) return { key: stored, source: 'file' };
  const key = `mck_${randomBytes(24).toString('base64url')}`;
  await writeFileAtomic(file, `${key}\n`, 0o600);
  return { key, source: 'generated' };
}
