/** Tests are TypeScript transformed by SWC; type-checking is `tsc --noEmit` in `npm test`. */
const swc = ['@swc/jest', { jsc: { target: 'es2023' }, module: { type: 'commonjs' } }];
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>'],
  testMatch: ['**/test/**/*.test.ts'],
  testPathIgnorePatterns: ['/node_modules/', '/dist/'],
  // jose 6 is published as ES modules only: SWC turns it into CommonJS for Jest (Node itself loads it natively).
  transform: { '^.+\\.ts$': swc, '/node_modules/jose/.+\\.js$': swc },
  transformIgnorePatterns: ['/node_modules/(?!jose/)'],
  globalSetup: '<rootDir>/test/global-setup.ts',
  globalTeardown: '<rootDir>/test/global-teardown.ts',
  testTimeout: 60000,
  // The suites wait on PostgreSQL, Redis and sockets far more than they compute: two at once keep both cores busy
  // (Jest's default on a 2-core machine is one).
  maxWorkers: 2,
};
