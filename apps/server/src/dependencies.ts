import { readFile } from 'node:fs/promises';
import type { Config } from '@minicloud/config';
import { connectionFromUrl } from '@minicloud/queue';

type Log = (msg: string) => void;

/**
 * Wait until a dependency answers, saying so: the first failure and then one line every
 * `reportEveryMs` name what is awaited and why, instead of a silent hang. Errors that
 * `isTransient` does not accept end the wait (and start-up) at once.
 */
export async function waitForDependency<T>(
  what: string,
  attempt: () => Promise<T>,
  log: Log,
  options: { retryMs?: number; reportEveryMs?: number; isTransient?: (e: unknown) => boolean } = {},
): Promise<T> {
  const { retryMs = 1000, reportEveryMs = 10_000, isTransient = () => true } = options;
  const started = Date.now();
  let reported = 0;
  for (;;) {
    try {
      const result = await attempt();
      if (reported) log(`${what}: available after ${Math.round((Date.now() - started) / 1000)} s`);
      return result;
    } catch (e) {
      if (!isTransient(e)) throw e;
      if (!reported || Date.now() - reported >= reportEveryMs) {
        const waited = Math.round((Date.now() - started) / 1000);
        log(
          `waiting for ${what} (${waited} s so far): ${(e as Error)?.message ?? String(e)}; retrying every ${retryMs / 1000} s`,
        );
        reported = Date.now();
      }
      await new Promise((r) => setTimeout(r, retryMs));
    }
  }
}

/** The Redis URL without its password, for messages. */
export function redactedUrl(url: string): string {
  const u = new URL(url);
  if (u.password) u.password = '***';
  return u.toString();
}

/**
 * Redis connection options: the URL's, with the password from the password file when the URL
 * has none (scripts/setup.sh writes it, mode 0600). A missing file is an error only when the
 * setting names it explicitly.
 */
export async function redisConnection(config: Config) {
  const connection = connectionFromUrl(config.redisUrl);
  if (connection.password) return connection;
  const { path, required } = config.redisPasswordFile;
  try {
    const password = (await readFile(path, 'utf8')).trim();
    return password ? { ...connection, password } : connection;
  } catch (e) {
    if (required || (e as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new Error(`cannot read the Redis password file ${path}: ${(e as Error).message}`);
    }
    return connection;
  }
}
