export * from './seed.js';
export * from './iso.js';
export { buildIso, type IsoFiles } from './iso9660.js';
