import { LinuxNetworkDriver } from '@minicloud/network';
import { fakeRunner, missing } from '../fake-runner.js';

describe('Elastic IP addresses on the uplink (scripted host)', () => {
  const addrJson = (extra: object[] = []) =>
    JSON.stringify([
      {
        ifname: 'eth0',
        addr_info: [
          { family: 'inet', local: '192.0.2.5', prefixlen: 24, scope: 'global', label: 'eth0' },
          ...extra,
        ],
      },
      { ifname: 'lo', addr_info: [{ family: 'inet', local: '127.0.0.1', prefixlen: 8 }] },
    ]);

  test('added as a scope-host /32 with the deployment label', async () => {
    const f = fakeRunner((cmd, args) => (args[1] === '-4' ? { stdout: addrJson() } : {}));
    const d = new LinuxNetworkDriver({ run: f.run });
    expect(
      await d.ensureElasticIpAddress({ uplink: 'eth0', publicIp: '198.51.100.10', prefix: 'mc' }),
    ).toBe(true);
    expect(f.line()[1]).toBe('ip addr add 198.51.100.10/32 dev eth0 scope host label eth0:mc');
  });

  test('already there: nothing to do; on another interface: a conflict', async () => {
    const f = fakeRunner(() => ({
      stdout: addrJson([
        { family: 'inet', local: '198.51.100.10', prefixlen: 32, scope: 'host', label: 'eth0:mc' },
      ]),
    }));
    const d = new LinuxNetworkDriver({ run: f.run });
    expect(
      await d.ensureElasticIpAddress({ uplink: 'eth0', publicIp: '198.51.100.10', prefix: 'mc' }),
    ).toBe(false);
    await expect(
      d.ensureElasticIpAddress({ uplink: 'eth0', publicIp: '192.0.2.5', prefix: 'mc' }),
    ).rejects.toMatchObject({ code: 'NetworkLinkConflict' });
  });

  test('listing: our label only; without a label, scope-host /32s inside the pools', async () => {
    const link = (label: string | undefined) =>
      JSON.stringify([
        {
          ifname: 'enx00e04c680001',
          addr_info: [
            { family: 'inet', local: '192.0.2.5', prefixlen: 24, scope: 'global' },
            { family: 'inet', local: '198.51.100.10', prefixlen: 32, scope: 'host', label },
            { family: 'inet', local: '198.51.100.77', prefixlen: 32, scope: 'global', label },
            { family: 'inet', local: '203.0.113.1', prefixlen: 32, scope: 'host', label },
          ],
        },
      ]);
    const f = fakeRunner(() => ({ stdout: link(undefined) }));
    const d = new LinuxNetworkDriver({ run: f.run });
    expect(
      await d.listElasticIpAddresses({
        uplink: 'enx00e04c680001',
        prefix: 'mc',
        pools: ['198.51.100.0/24'],
      }),
    ).toEqual(['198.51.100.10']);
    const g = fakeRunner(() => ({
      stdout: JSON.stringify([
        {
          ifname: 'eth0',
          addr_info: [
            {
              family: 'inet',
              local: '198.51.100.10',
              prefixlen: 32,
              scope: 'host',
              label: 'eth0:mc',
            },
            {
              family: 'inet',
              local: '198.51.100.11',
              prefixlen: 32,
              scope: 'host',
              label: 'eth0:xy',
            },
          ],
        },
      ]),
    }));
    expect(
      await new LinuxNetworkDriver({ run: g.run }).listElasticIpAddresses({
        uplink: 'eth0',
        prefix: 'mc',
      }),
    ).toEqual(['198.51.100.10']);
  });

  test('announce: iputils arping, falling back to busybox when it is not installed', async () => {
    const f = fakeRunner((cmd) => (cmd === 'arping' ? missing('arping') : {}));
    const d = new LinuxNetworkDriver({ run: f.run });
    const r = await d.announceElasticIp({ uplink: 'eth0', publicIp: '198.51.100.10' });
    expect(r).toMatchObject({ announced: true, tool: 'busybox arping' });
    expect(r.notes).toEqual([expect.stringMatching(/iputils-arping/)]);
    expect(f.line()).toEqual([
      'arping -U -c 1 -I eth0 198.51.100.10',
      'busybox arping -U -c 1 -I eth0 198.51.100.10',
    ]);
    f.calls.length = 0;
    await d.announceElasticIp({ uplink: 'eth0', publicIp: '198.51.100.10' });
    expect(f.line()).toEqual(['busybox arping -U -c 1 -I eth0 198.51.100.10']);
  });
});
