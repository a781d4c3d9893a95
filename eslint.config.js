import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// The arrows of docs/architecture.md, enforced: each folder lists what it must never import.
// (A later block replaces the rule for its files, so every block repeats the host-command rule.)
const HOST_COMMANDS = {
  group: ['child_process', 'node:child_process'],
  message: 'Run host commands through @minicloud/host.',
};
const DRIVERS = [
  '@minicloud/host',
  '@minicloud/hypervisor',
  '@minicloud/network',
  '@minicloud/storage',
  '@minicloud/cloudinit',
];
const STATE = ['@minicloud/db', '@minicloud/queue', '@prisma/*', 'bullmq', 'ioredis'];
const APPS = ['@minicloud/app-*'];

function forbid(groups, message, { hostCommands = true } = {}) {
  return {
    'no-restricted-imports': [
      'error',
      {
        patterns: [
          ...(hostCommands ? [HOST_COMMANDS] : []),
          ...(groups.length ? [{ group: groups, message }] : []),
        ],
      },
    ],
  };
}

export default tseslint.config(
  { ignores: ['node_modules/**', '**/dist/**', 'apps/web/static/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
      ...forbid([], ''),
    },
  },
  {
    files: ['packages/*/src/**'],
    rules: forbid(APPS, 'Packages never import an app: apps -> packages, never back.'),
  },
  {
    // Pure vocabulary: no I/O, no other workspace.
    files: ['packages/domain/src/**'],
    rules: forbid(
      ['@minicloud/*', ...APPS, ...STATE, 'node:fs*', 'fs', 'node:net', 'node:http*', 'express'],
      '@minicloud/domain is pure: ids, names, state machines, IPAM; no I/O and no other package.',
    ),
  },
  {
    files: ['packages/contracts/src/**'],
    rules: forbid(
      [...DRIVERS, ...STATE, ...APPS, '@minicloud/client', '@minicloud/config'],
      'Contracts are schemas: they use only @minicloud/domain and zod.',
    ),
  },
  {
    files: ['packages/client/src/**'],
    rules: forbid(
      [...DRIVERS, ...STATE, ...APPS, '@minicloud/config'],
      'The client speaks HTTP: it uses only @minicloud/contracts and @minicloud/domain.',
    ),
  },
  {
    // Drivers: domain + host only; never the database, the queue or an app.
    files: [
      'packages/hypervisor/src/**',
      'packages/network/src/**',
      'packages/storage/src/**',
      'packages/cloudinit/src/**',
    ],
    rules: forbid(
      [...STATE, ...APPS, '@minicloud/config', '@minicloud/contracts', '@minicloud/client'],
      'Drivers depend on @minicloud/domain and @minicloud/host only: the worker hands them data.',
    ),
  },
  {
    files: ['packages/db/src/**', 'packages/queue/src/**', 'packages/config/src/**'],
    rules: forbid(
      [...DRIVERS, ...APPS],
      'State and settings packages never reach the host or an app.',
    ),
  },
  {
    // The one module that runs host commands.
    files: ['packages/host/src/**'],
    rules: forbid(
      [...STATE, ...APPS, ...DRIVERS.filter((d) => d !== '@minicloud/host')],
      '@minicloud/host runs commands; it knows nothing above it.',
      { hostCommands: false },
    ),
  },
  {
    // The API validates, authorises, writes the database and enqueues; workers touch the host.
    files: ['apps/api/src/**'],
    rules: forbid(
      [...DRIVERS, '@minicloud/app-worker', '@minicloud/app-server'],
      'The API never calls a driver or the host: it enqueues work for the worker.',
    ),
  },
  {
    files: ['apps/worker/src/**'],
    rules: forbid(
      ['@minicloud/app-api', '@minicloud/app-server', '@minicloud/contracts', '@minicloud/client'],
      'The worker uses packages, never another app.',
    ),
  },
  {
    // Faces for people: only the typed client and the contracts.
    files: ['apps/web/src/**', 'apps/cli/src/**'],
    rules: forbid(
      [...DRIVERS, ...STATE, '@minicloud/app-*', '@minicloud/config'],
      'The dashboard and the CLI go through @minicloud/client and @minicloud/contracts only.',
    ),
  },
  {
    // Test harnesses start minicloud itself (and agents in namespaces) as processes.
    files: ['packages/testkit/src/**'],
    rules: { 'no-restricted-imports': 'off' },
  },
  {
    files: [
      '**/test/**',
      'tests/**',
      'scripts/**',
      'packages/client/src/**',
      'packages/testkit/src/**',
    ],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
  {
    files: ['**/*.js'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly' } },
  },
);
