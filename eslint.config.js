import js from '@eslint/js';
import tseslint from 'typescript-eslint';

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
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['child_process', 'node:child_process'],
              message: 'Run host commands through @minicloud/host.',
            },
          ],
        },
      ],
    },
  },
  {
    // The one module that runs host commands; test harnesses start minicloud itself as a process.
    files: ['packages/host/src/**', 'tests/support/**'],
    rules: { 'no-restricted-imports': 'off' },
  },
  {
    files: ['**/test/**', 'tests/**', 'scripts/**', 'packages/client/src/**'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
  {
    files: ['**/*.js'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly' } },
  },
);
