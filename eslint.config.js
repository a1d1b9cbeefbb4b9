// The linter's rules, run by `npm run lint` (and by `npm test` before the
// suite). Only rules that catch real faults are on, each for a reason:
// - promises nobody awaits or catches: an unhandled rejection ends the launcher,
//   and a teardown step that is not awaited leaves QEMU or a lock behind;
// - import cycles: the layers of src/ only import downwards (docs/design.md),
//   and a cycle makes module start-up order decide what is defined;
// - unused variables and imports: dead code that a reader has to rule out
//   (unused exports and files: knip, configured in knip.json).
// Style is the formatter's (prettier), not the linter's.
import js from '@eslint/js';
import prettier from 'eslint-config-prettier';
import importX, { createNodeResolver } from 'eslint-plugin-import-x';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: ['node_modules/**', '.cache/**', 'demo-stick/**', 'dist/**', 'payload/**'],
  },
  {
    files: ['**/*.ts'],
    extends: [js.configs.recommended, ...tseslint.configs.recommended, importX.flatConfigs.typescript],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    settings: {
      'import-x/resolver-next': [createNodeResolver({ extensions: ['.ts', '.js'] })],
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: false }],
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      // Off, each on purpose: names from the guest and the registry are
      // checked for control characters by regular expressions that hold them;
      // the stream classes hand `this` to their inner closures by name; the
      // rest are matters of taste the formatter's authors leave to us.
      'no-control-regex': 'off',
      '@typescript-eslint/no-this-alias': 'off',
      'prefer-const': 'off',
      'no-useless-assignment': 'off',
      'no-regex-spaces': 'off',
      'preserve-caught-error': 'off',
    },
  },
  prettier,
);
