export * from './errors.js';
export * from './ipam.js';
export * from './mac.js';
export * from './naming.js';
export * from './dnsmasq.js';
export * from './nft.js';
export * from './mutex.js';
export * from './linux-network.js';
