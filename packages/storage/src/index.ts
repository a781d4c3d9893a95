export * from './errors.js';
export * from './qemu-img.js';
export * from './image-store.js';
