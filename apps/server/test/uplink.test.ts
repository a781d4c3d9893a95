import { uplinkAddressesFrom } from '../src/uplink.js';

describe('the uplink addresses no public pool may hold', () => {
  it('takes its own addresses, their subnet edges and its gateways; not Elastic IPs', () => {
    // As `ip -j -4 addr show dev eth0` and `ip -j -4 route show dev eth0` print them.
    const addrs = [
      {
        ifname: 'eth0',
        addr_info: [
          { family: 'inet', local: '192.0.2.2', prefixlen: 24, scope: 'global' },
          // An Elastic IP minicloud holds on the uplink: not the host's own.
          { family: 'inet', local: '192.0.2.77', prefixlen: 32, scope: 'host' },
          { family: 'inet', local: '198.51.100.9', prefixlen: 32, scope: 'global' },
        ],
      },
    ];
    const routes = [
      { dst: 'default', gateway: '192.0.2.1', dev: 'eth0' },
      { dst: '192.0.2.0/24', dev: 'eth0', scope: 'link', prefsrc: '192.0.2.2' },
    ];
    expect(uplinkAddressesFrom('eth0', addrs, routes).map((a) => a.ip)).toEqual([
      '192.0.2.2',
      '192.0.2.0',
      '192.0.2.255',
      '198.51.100.9',
      '192.0.2.1',
    ]);
    expect(uplinkAddressesFrom('eth0', addrs, routes).find((a) => a.ip === '192.0.2.1')?.what).toBe(
      'a gateway of the uplink eth0',
    );
  });
});
