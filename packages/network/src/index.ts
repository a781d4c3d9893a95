export * from './errors.js';
export * from './driver.js';
export * from './linux-network-driver.js';
export * from './dhcp/dnsmasq-args.js';
export * from './dhcp/dhcp-hosts.js';
export * from './vpc-ruleset/index.js';
export * from './firewall/index.js';
