export * from './errors.js';
export * from './domain-xml.js';
export * from './detect.js';
export * from './libvirt.js';
