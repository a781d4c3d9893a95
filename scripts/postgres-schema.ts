/**
 * One schema, two providers. prisma/schema.prisma (SQLite) is the source; this writes
 * prisma/postgresql/schema.prisma from it and, when the models changed, the PostgreSQL migration
 * that takes the previous PostgreSQL schema to the new one (`prisma migrate diff`, offline with
 * the JavaScript engine, which needs the local PostgreSQL that scripts/setup.sh starts).
 *
 *   node --import tsx scripts/postgres-schema.ts NAME    after adding prisma/migrations/NNNN_NAME
 *   node --import tsx scripts/postgres-schema.ts --check exit 1 when the PostgreSQL schema is stale
 *
 * SQL that Prisma's schema cannot say (partial indexes, data moves) is added by hand to both
 * migration.sql files, as for SQLite.
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from '@minicloud/host';
import { postgresSchemaOf } from '@minicloud/db';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SOURCE = join(ROOT, 'prisma', 'schema.prisma');
const TARGET = join(ROOT, 'prisma', 'postgresql', 'schema.prisma');
const MIGRATIONS = join(ROOT, 'prisma', 'postgresql', 'migrations');
const URL_FILE = '/var/lib/minicloud-postgres/url';

const wanted = postgresSchemaOf(readFileSync(SOURCE, 'utf8'));
const current = existsSync(TARGET) ? readFileSync(TARGET, 'utf8') : null;
const arg = process.argv[2];

if (arg === '--check') {
  if (current !== wanted) {
    console.error(
      'prisma/postgresql/schema.prisma is stale: run node --import tsx scripts/postgres-schema.ts NAME',
    );
    process.exit(1);
  }
  process.exit(0);
}
if (current === wanted) {
  console.log('prisma/postgresql/schema.prisma is up to date');
  process.exit(0);
}
if (!arg || !/^[a-z0-9_]+$/.test(arg)) {
  console.error('usage: scripts/postgres-schema.ts NAME (lower case, digits, _) | --check');
  process.exit(2);
}

const databaseUrl = process.env.DATABASE_URL ?? readFileSync(URL_FILE, 'utf8').trim();
const previous = join(tmpdir(), `minicloud-previous-${process.pid}.prisma`);
const from = current === null ? ['--from-empty'] : ['--from-schema-datamodel', previous];
if (current !== null) await writeFile(previous, current);
// The CLI reads the config's schema (this file) to choose its engine: write it first.
await mkdir(dirname(TARGET), { recursive: true });
await writeFile(TARGET, wanted);
let sql: string;
try {
  sql = (
    await run(
      'npx',
      [
        'prisma',
        'migrate',
        'diff',
        '--config',
        join(ROOT, 'prisma', 'postgresql', 'prisma.config.ts'),
        ...from,
        '--to-schema-datamodel',
        TARGET,
        '--script',
      ],
      { cwd: ROOT, env: { ...process.env, DATABASE_URL: databaseUrl }, timeoutMs: 120_000 },
    )
  ).stdout;
} catch (error) {
  if (current !== null) await writeFile(TARGET, current);
  throw error;
} finally {
  await rm(previous, { force: true });
}
const existing = existsSync(MIGRATIONS) ? await readdir(MIGRATIONS) : [];
const number = String(existing.filter((n) => /^\d{4}_/.test(n)).length + 1).padStart(4, '0');
const folder = join(MIGRATIONS, `${number}_${arg}`);
await mkdir(folder, { recursive: true });
await writeFile(join(folder, 'migration.sql'), sql);
console.log(`wrote ${folder}/migration.sql and prisma/postgresql/schema.prisma`);
console.log('then: npx prisma generate --config prisma/postgresql/prisma.config.ts');
