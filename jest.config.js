// Four projects: pure unit tests, integration tests against real services (the API and worker
// ones on SQLite and again on PostgreSQL), end-to-end runs
// that boot real guests. All run as ESM (@unraid/libvirt is ESM-only).
const swc = [
  '@swc/jest',
  { jsc: { target: 'es2022', parser: { syntax: 'typescript' } }, module: { type: 'es6' } },
];
const common = {
  extensionsToTreatAsEsm: ['.ts'],
  transform: { '^.+\\.ts$': swc },
  moduleNameMapper: {
    '^(\\.{1,2}/.*)\\.js$': '$1',
  },
  testEnvironment: 'node',
};
const integrationPostgres = {
  ...common,
  displayName: 'integration-postgres',
  testMatch: ['<rootDir>/apps/{api,worker}/test/**/*.int.ts'],
  setupFiles: ['<rootDir>/packages/testkit/src/use-postgres.ts'],
};

export default {
  // Per test; end-to-end tests boot real guests under TCG.
  testTimeout: 600_000,
  // ssh2 and BullMQ sockets can outlive a finished suite by seconds; never let CI hang on them.
  forceExit: true,
  projects: [
    {
      ...common,
      displayName: 'unit',
      testMatch: ['<rootDir>/{apps,packages}/*/test/**/*.test.ts'],
    },
    {
      ...common,
      displayName: 'integration',
      testMatch: ['<rootDir>/{apps,packages}/*/test/**/*.int.ts'],
    },
    // The API and worker integration suites again, each run on its own PostgreSQL database.
    // Not in the default run yet (some suites added since fail there): MINICLOUD_TEST_POSTGRES=1.
    ...(process.env.MINICLOUD_TEST_POSTGRES === '1' ? [integrationPostgres] : []),
    {
      ...common,
      displayName: 'e2e',
      testMatch: ['<rootDir>/tests/**/*.e2e.ts'],
    },
  ],
};
