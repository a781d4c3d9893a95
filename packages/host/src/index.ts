export * from './run.js';
export * from './files.js';
