export * from './errors.js';
export * from './domain-xml.js';
export * from './detect.js';
export * from './libvirt.js';
export * from './xml.js';
export * from './disk-xml.js';
export * from './disk-ops.js';
export * from './call-gate.js';
