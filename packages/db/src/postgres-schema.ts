/**
 * prisma/schema.prisma (SQLite) is the one schema; prisma/postgresql/schema.prisma is derived from
 * it by this function (scripts/postgres-schema.ts writes it and its migration). Only the
 * datasource and the client's output folder differ.
 */
export function postgresSchemaOf(sqliteSchema: string): string {
  const replaced = (text: string, from: RegExp, to: string) => {
    if (!from.test(text)) throw new Error(`prisma/schema.prisma: expected ${String(from)}`);
    return text.replace(from, to);
  };
  let out = replaced(sqliteSchema, /provider = "sqlite"/, 'provider = "postgresql"');
  out = replaced(out, /url\s+= "file:[^"]*"/, 'url      = "postgresql://localhost/minicloud"');
  out = replaced(
    out,
    /(engineType\s+= "client"\n)/,
    '$1  output          = "../../node_modules/.prisma/client-postgresql"\n',
  );
  return (
    '// GENERATED from prisma/schema.prisma by scripts/postgres-schema.ts: edit that file instead.\n' +
    out
  );
}
