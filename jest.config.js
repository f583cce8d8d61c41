/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/common', '<rootDir>/server', '<rootDir>/agent', '<rootDir>/sdk', '<rootDir>/cli', '<rootDir>/helper', '<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  // jose 6 ships ESM only; jest's CommonJS runtime needs it transpiled.
  transform: {
    '^.+\\.[tj]s$': ['ts-jest', { tsconfig: '<rootDir>/tsconfig.jest.json' }],
  },
  transformIgnorePatterns: ['/node_modules/(?!jose/)'],
  setupFiles: ['reflect-metadata'],
  modulePathIgnorePatterns: ['<rootDir>/dist/'],
  testTimeout: 30000,
  // The adversarial figures (recorded by every worker, added up and printed at the end), and a
  // throwaway PostgreSQL cluster when none is given and PostgreSQL is installed.
  globalSetup: '<rootDir>/test/global/setup.ts',
  globalTeardown: '<rootDir>/test/global/teardown.ts',
};
