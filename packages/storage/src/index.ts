export * from './errors.js';
export * from './qemu-img.js';
export * from './qcow2.js';
export * from './image-store.js';
export * from './http-download.js';
export * from './volumes.js';
export * from './file-volumes.js';
export * from './lvm-volumes.js';
