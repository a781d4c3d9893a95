export * from './errors.js';
export * from './driver.js';
export * from './linux-network-driver.js';
export * from './dhcp/dnsmasq-args.js';
export * from './dhcp/dhcp-hosts.js';
export * from './vpc/ruleset.js';
export * from './vpc/eip-maps.js';
export * from './sg-ruleset.js';
