import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { postgresSchemaOf } from '../src/postgres-schema.js';
import { isPostgresUrl } from '../src/postgres.js';

const prisma = (path: string) =>
  readFileSync(fileURLToPath(new URL(`../../../prisma/${path}`, import.meta.url)), 'utf8');

describe('one schema, two providers', () => {
  it('keeps prisma/postgresql/schema.prisma generated from prisma/schema.prisma', () => {
    // Fails after a change to prisma/schema.prisma until scripts/postgres-schema.ts NAME is run.
    expect(prisma('postgresql/schema.prisma')).toBe(postgresSchemaOf(prisma('schema.prisma')));
  });

  it('changes only the datasource and the client output', () => {
    const out = postgresSchemaOf(prisma('schema.prisma'));
    expect(out).toContain('provider = "postgresql"');
    expect(out).toContain('output          = "../../node_modules/.prisma/client-postgresql"');
    expect(out).not.toContain('sqlite');
    const models = (text: string) => text.slice(text.indexOf('\nmodel '));
    expect(models(out)).toBe(models(prisma('schema.prisma')));
  });

  it('refuses a schema it does not recognise rather than writing a wrong one', () => {
    expect(() => postgresSchemaOf('datasource db {\n  provider = "mysql"\n}\n')).toThrow(
      /expected/,
    );
  });

  it('tells PostgreSQL URLs from SQLite ones', () => {
    expect(isPostgresUrl('postgresql://u:p@127.0.0.1/db')).toBe(true);
    expect(isPostgresUrl('postgres://u@h/db')).toBe(true);
    expect(isPostgresUrl('file:/var/lib/minicloud/minicloud.db')).toBe(false);
  });
});
