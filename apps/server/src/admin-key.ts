import { randomBytes } from 'node:crypto';
import { link, mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { readFileIfExists } from '@minicloud/host';

/**
 * The admin API key: MINICLOUD_ADMIN_KEY if set, otherwise the one stored under the data
 * directory (mode 0600), generated on first start. Processes started together (`--role api` and
 * `--role worker`) agree on one key: the first complete file linked into place wins.
 */
export async function ensureAdminKey(
  fromEnv: string | undefined,
  file: string,
): Promise<{ key: string; source: 'environment' | 'file' | 'generated' }> {
  if (fromEnv) return { key: fromEnv, source: 'environment' };
  const stored = await readStoredKey(file);
  if (stored) return { key: stored, source: 'file' };
  const key = `mck_${randomBytes(24).toString('base64url')}`;
  await mkdir(dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
  try {
    await writeFile(tmp, `${key}\n`, { mode: 0o600, flush: true });
    // link() fails with EEXIST when the name is taken, unlike rename(), which would replace a key
    // another process has already handed out.
    await link(tmp, file);
    return { key, source: 'generated' };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    const winner = await readStoredKey(file);
    if (!winner) throw new Error(`${file} exists but holds no key: remove it or fill it in`);
    return { key: winner, source: 'file' };
  } finally {
    await rm(tmp, { force: true });
  }
}

async function readStoredKey(file: string): Promise<string | undefined> {
  return (await readFileIfExists(file))?.trim() || undefined;
}
