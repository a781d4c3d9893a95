import { defineConfig } from 'prisma/config';
import { PrismaPg } from '@prisma/adapter-pg';

// The PostgreSQL twin of /prisma.config.ts (paths are relative to this file). Its schema is
// generated from prisma/schema.prisma by scripts/postgres-schema.ts. The JavaScript engine works
// offline but needs a live server even for `migrate diff`: scripts/setup.sh starts one.
const connectionString = process.env.DATABASE_URL ?? 'postgresql://localhost/minicloud';

export default defineConfig({
  experimental: { adapter: true },
  engine: 'js',
  schema: 'schema.prisma',
  migrations: { path: 'migrations' },
  adapter: async () => new PrismaPg({ connectionString }),
});
