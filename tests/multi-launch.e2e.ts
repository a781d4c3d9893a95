import {
  defaultImage,
  destroyAndListLeftovers,
  hostLeftovers,
  startMinicloud,
  waitForSsh,
  type MinicloudUnderTest,
} from '@minicloud/testkit';

describe('five instances in one request', () => {
  let mc: MinicloudUnderTest;
  afterAll(async () => {
    expect(await destroyAndListLeftovers(mc)).toEqual([]);
  });

  it('reaches SSH on all of them, each with its own address and hostname', async () => {
    mc = await startMinicloud();
    const image = await defaultImage(mc);
    const key = await mc.client.createKeyPair('multi');
    const r = await mc.client.runInstances({
      imageId: image.imageId,
      instanceType: 't3.nano',
      keyName: 'multi',
      minCount: 5,
      maxCount: 5,
    });
    expect(r.instances).toHaveLength(5);
    expect(r.instances.map((i: any) => i.amiLaunchIndex)).toEqual([0, 1, 2, 3, 4]);
    const running = await Promise.all(
      r.instances.map((i: any) =>
        mc.client.waitForInstanceState(i.instanceId, ['running'], 180_000),
      ),
    );
    const ips = running.map((i) => i.privateIpAddress);
    expect(new Set(ips).size).toBe(5);
    const hostnames = await Promise.all(
      ips.map((ip) => waitForSsh(ip, key.keyMaterial, 'hostname', 300_000)),
    );
    expect(hostnames.map((h) => h.trim())).toEqual(
      ips.map((ip) => `ip-${ip.replaceAll('.', '-')}`),
    );

    await Promise.all(
      r.instances.map((i: any) => mc.client.call('DELETE', `/v1/instances/${i.instanceId}`)),
    );
    await Promise.all(
      r.instances.map((i: any) =>
        mc.client.waitForInstanceState(i.instanceId, ['terminated'], 120_000),
      ),
    );
    expect(
      Object.values(await hostLeftovers(mc.prefix, mc.dataDir, { includeNetwork: false })).flat(),
    ).toEqual([]);
  });
});
