/**
 * Shared test support for minicloud's unit, integration and e2e tests. Unit tests import the
 * subpath they need (e.g. '@minicloud/testkit/expect-errors'): this index loads everything,
 * the API harness (and with it the API, the database and the queue) included.
 * netns-agent.ts is not exported: it is a program, run inside a network namespace.
 */
export * from './api-harness.js';
export * from './data-dir-privacy.js';
export * from './expect-errors.js';
export * from './fake-internet.js';
export * from './golden.js';
export * from './guest-identity.js';
export * from './guests.js';
export * from './host-probes.js';
export * from './minicloud-process.js';
export * from './ssh.js';
export * from './steps.js';
export * from './wait.js';
export * from './redis-server.js';
