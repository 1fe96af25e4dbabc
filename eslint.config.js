// @ts-check
import tseslint from 'typescript-eslint';

const banNondeterminism = {
  'no-restricted-globals': [
    'error',
    { name: 'Date', message: 'Time arrives as an input in deterministic code.' },
    { name: 'setTimeout', message: 'Timers are driver outputs, not part of deterministic code.' },
    { name: 'setInterval', message: 'Timers are driver outputs, not part of deterministic code.' },
    { name: 'setImmediate', message: 'Timers are driver outputs, not part of deterministic code.' },
  ],
  'no-restricted-properties': [
    'error',
    { object: 'Math', property: 'random', message: 'Randomness is an input in deterministic code.' },
  ],
};

export default tseslint.config(
  { ignores: ['node_modules/**', 'data/**', 'bench/results/**', 'coverage/**', '**/*.js', '!bin/**'] },
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': [
        'error',
        { considerDefaultExhaustiveForUnions: true },
      ],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
    },
  },
  { files: ['consensus/**/*.ts', 'vm/**/*.ts', 'contracts/**/*.ts'], rules: banNondeterminism },
  { files: ['bin/**/*.js'], ...tseslint.configs.disableTypeChecked },
);
