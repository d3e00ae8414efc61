/** Tests are TypeScript transformed by SWC; type-checking is `tsc --noEmit` in `npm test`. */
const swc = ['@swc/jest', { jsc: { target: 'es2023' }, module: { type: 'commonjs' } }];
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>'],
  testMatch: ['**/test/**/*.test.ts'],
  testPathIgnorePatterns: ['/node_modules/', '/dist/'],
  // jose 6 and fhir-kit-client 2 are published as ES modules only: SWC turns them into CommonJS for Jest (Node
  // itself loads them natively); fhir-kit-client exports only an `import` condition, so Jest is pointed at its file.
  transform: { '^.+\\.ts$': swc, '/node_modules/(jose|fhir-kit-client)/.+\\.js$': swc },
  transformIgnorePatterns: ['/node_modules/(?!(jose|fhir-kit-client)/)'],
  moduleNameMapper: { '^fhir-kit-client$': '<rootDir>/node_modules/fhir-kit-client/dist/index.js' },
  globalSetup: '<rootDir>/test/global-setup.ts',
  globalTeardown: '<rootDir>/test/global-teardown.ts',
  testTimeout: 60000,
  // The suites wait on PostgreSQL (durable commits), Redis and sockets far more than they compute: three at once keep
  // both cores busy (Jest's default on a 2-core machine is one). Measured on 91 suites: 358 s with three workers.
  maxWorkers: 3,
  testSequencer: '<rootDir>/test/sequencer.js',
};
