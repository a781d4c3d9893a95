export * from './seed.js';
export * from './iso.js';
