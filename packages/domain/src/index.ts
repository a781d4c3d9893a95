export * from './ids.js';
export * from './errors.js';
export * from './instance-state.js';
export * from './instance-types.js';
export * from './names.js';
export * from './volumes.js';
