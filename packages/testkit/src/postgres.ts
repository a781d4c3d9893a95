import { readFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import pg from 'pg';

/**
 * Which database the integration harnesses use: MINICLOUD_TEST_DATABASE=postgres (the
 * integration-postgres jest project sets it) or SQLite (the default).
 */
export function testDatabaseKind(): 'sqlite' | 'postgres' {
  return process.env.MINICLOUD_TEST_DATABASE === 'postgres' ? 'postgres' : 'sqlite';
}

/** Written by scripts/setup.sh (0600): the minicloud role's URL on the local cluster. */
const URL_FILE = '/var/lib/minicloud-postgres/url';
const NAME_PREFIX = 'minicloud_test_';

async function serverUrl(): Promise<string> {
  const url = process.env.MINICLOUD_TEST_POSTGRES_URL;
  if (url) return url;
  try {
    return (await readFile(URL_FILE, 'utf8')).trim();
  } catch {
    throw new Error(
      `MINICLOUD_TEST_POSTGRES_URL is not set and ${URL_FILE} is missing: run scripts/setup.sh, which starts PostgreSQL`,
    );
  }
}

async function withAdmin<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/**
 * A new, empty database for one test run (minicloud_test_<pid>_<hex>) and a drop() for its end.
 * Databases that a killed run left behind (their process is gone) are dropped on the way.
 */
export async function createPostgresTestDatabase(): Promise<{
  url: string;
  name: string;
  drop: () => Promise<void>;
}> {
  const base = await serverUrl();
  const name = `${NAME_PREFIX}${process.pid}_${randomBytes(4).toString('hex')}`;
  await withAdmin(base, async (client) => {
    const { rows } = await client.query<{ datname: string }>(
      "SELECT datname FROM pg_database WHERE datname LIKE 'minicloud\\_test\\_%'",
    );
    for (const { datname } of rows) {
      const pid = Number(datname.slice(NAME_PREFIX.length).split('_')[0]);
      if (Number.isInteger(pid) && pid > 0 && !isAlive(pid)) {
        await client.query(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`).catch(() => {});
      }
    }
    await client.query(`CREATE DATABASE "${name}"`);
  });
  const url = new URL(base);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    drop: () =>
      withAdmin(base, async (client) => {
        await client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      }),
  };
}
