/**
 * Hostile input that used to answer 500 or do the wrong thing (issue 11): prototype keys as
 * values and filter names, and unique-key races. Real SQLite and Redis, no worker.
 */
import { MAX_USER_DATA_BYTES, newId } from '@minicloud/domain';
import type { ServiceContext } from '@minicloud/app-api';
import { ImageService } from '@minicloud/app-api/images';
import { InstanceTypeService } from '@minicloud/app-api/instance-types';
import { AddressService } from '@minicloud/app-api/addresses';
import { startApiOnly } from '@minicloud/testkit/api-harness';

type Harness = Awaited<ReturnType<typeof startApiOnly>>;

const PROTOTYPE_KEYS = ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf'];

describe('hostile input against real SQLite and Redis', () => {
  let h: Harness;
  let groupId: string;
  beforeAll(async () => {
    h = await startApiOnly({ networkCidr: '10.250.9.0/27' });
    const groups = await h.client.request('GET', '/v1/security-groups');
    groupId = groups.body.securityGroups[0].groupId;
  });
  afterAll(async () => {
    await h?.close();
  });
  /** The settings the running API reads (the same object): tests set the uplink's addresses. */
  const settings = (): ServiceContext['settings'] => h.settings;

  it('refuses prototype keys as ipProtocol with 400, adding no rule', async () => {
    const rules = () => h.db.securityGroupRule.count();
    const before = await rules();
    for (const ipProtocol of PROTOTYPE_KEYS) {
      const r = await h.client.request('POST', `/v1/security-groups/${groupId}/ingress`, {
        ipProtocol,
        cidrIpv4: '192.0.2.0/24',
      });
      expect({ ipProtocol, status: r.status, code: r.body?.error?.code }).toEqual({
        ipProtocol,
        status: 400,
        code: 'InvalidParameterValue',
      });
    }
    expect(await rules()).toBe(before);
  });

  it('refuses prototype keys as instance states', async () => {
    for (const state of PROTOTYPE_KEYS) {
      const r = await h.client.request('GET', `/v1/instances?state=${state}`);
      expect({ state, status: r.status, code: r.body?.error?.code }).toEqual({
        state,
        status: 400,
        code: 'InvalidParameterValue',
      });
    }
  });

  it('treats a tag filter named __proto__ or constructor as a tag key', async () => {
    const imageId = newId('image');
    await h.db.image.create({
      data: {
        id: imageId,
        name: 'tagged',
        state: 'available',
        source: '/dev/null',
        format: 'qcow2',
        path: '/nonexistent/x.qcow2',
      },
    });
    // zod drops a __proto__ key of a record (it would be the result's prototype): never stored.
    const dropped = await h.client.request('POST', '/v1/instances', {
      imageId,
      instanceType: 't3.micro',
      tags: JSON.parse('{"__proto__": "yes"}'),
    });
    expect(dropped.status).toBe(202);
    expect(await h.db.tag.count({ where: { key: '__proto__' } })).toBe(0);
    const run = await h.client.request('POST', '/v1/instances', {
      imageId,
      instanceType: 't3.micro',
      tags: { constructor: 'also', toString: 'too' },
    });
    expect(run.status).toBe(202);
    const id = run.body.instances[0].instanceId;
    const all = await h.client.request('GET', '/v1/instances');
    expect(all.body.instances).toHaveLength(2);
    // Before: the filter became the filter object's prototype, was ignored, and matched all.
    const proto = await h.client.request('GET', '/v1/instances?tag:__proto__=yes');
    expect(proto.body.instances).toEqual([]);
    for (const query of ['tag:constructor=also', 'tag:toString=too', 'tag:constructor']) {
      const r = await h.client.request('GET', `/v1/instances?${query}`);
      expect({
        query,
        ids: r.body.instances.map((i: { instanceId: string }) => i.instanceId),
      }).toEqual({ query, ids: [id] });
    }
  });

  it('answers concurrent creates of one instance type with one 201 and the rest Duplicate', async () => {
    const types = new InstanceTypeService(h);
    const input = {
      instanceType: 'race1.large',
      family: 'general-purpose' as const,
      vcpus: 2,
      memoryMiB: 1024,
      instanceStorageGiB: 0,
      gpus: 0,
    };
    const results = await Promise.allSettled(Array.from({ length: 10 }, () => types.create(input)));
    const codes = results.map((r) =>
      r.status === 'fulfilled'
        ? 'created'
        : ((r.reason as { code?: string }).code ?? String(r.reason)),
    );
    expect(codes.filter((c) => c === 'created')).toHaveLength(1);
    expect(codes.filter((c) => c !== 'created')).toEqual(
      Array(9).fill('InvalidInstanceType.Duplicate'),
    );
    expect(await h.db.instanceType.count({ where: { name: 'race1.large' } })).toBe(1);
  });

  it('registers one image of a name under concurrent registers; the others are Duplicate', async () => {
    const images = new ImageService(h);
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, () =>
        images.register({ name: 'raced-image', source: '/srv/images/raced.qcow2' }),
      ),
    );
    const codes = results.map((r) =>
      r.status === 'fulfilled'
        ? 'created'
        : ((r.reason as { code?: string }).code ?? String(r.reason)),
    );
    expect(codes.filter((c) => c === 'created')).toHaveLength(1);
    expect(codes.filter((c) => c !== 'created')).toEqual(Array(9).fill('InvalidAMIName.Duplicate'));
    expect(await h.db.image.count({ where: { name: 'raced-image' } })).toBe(1);
  });

  it('lets a name be used again once its image failed, never twice while live', async () => {
    const first = newId('image');
    await h.db.image.create({
      data: { id: first, name: 'reused', state: 'failed', source: '/srv/images/a.qcow2' },
    });
    const again = await h.client.request('POST', '/v1/images', {
      name: 'reused',
      source: '/srv/images/b.qcow2',
    });
    expect(again.status).toBe(202);
    // The database itself refuses a second live row of the name (also for writers other than
    // the API's register).
    await expect(
      h.db.image.create({
        data: { id: newId('image'), name: 'reused', state: 'available', source: '/srv/images/c' },
      }),
    ).rejects.toMatchObject({ code: 'P2002' });
  });

  it('refuses an attach under an alias of a device in use (/dev/xvdf after /dev/sdf): 400, no job', async () => {
    const imageId = newId('image');
    await h.db.image.create({
      data: {
        id: imageId,
        name: 'alias',
        state: 'available',
        source: '/dev/null',
        format: 'qcow2',
        path: '/x',
      },
    });
    const run = await h.client.call('POST', '/v1/instances', { imageId, instanceType: 't3.micro' });
    const instanceId = run.instances[0].instanceId;
    await h.db.instance.update({ where: { id: instanceId }, data: { state: 'running' } });
    const volume = async () => {
      const v = await h.client.call('POST', '/v1/volumes', { size: 1 });
      await h.db.volume.update({ where: { id: v.volumeId }, data: { state: 'available' } });
      return v.volumeId as string;
    };
    const [first, second, third] = [await volume(), await volume(), await volume()];
    const attach = (volumeId: string, device: string) =>
      h.client.request('POST', `/v1/volumes/${volumeId}/attach`, { instanceId, device });

    expect((await attach(first, '/dev/sdf')).status).toBe(202);
    const jobs = await h.queue.countJobs();
    for (const [volumeId, device] of [
      [second, '/dev/xvdf'],
      [second, '/dev/sdf'],
    ] as const) {
      const r = await attach(volumeId, device);
      expect({ device, status: r.status, code: r.body.error?.code }).toEqual({
        device,
        status: 400,
        code: 'InvalidParameterValue',
      });
      expect(r.body.error.message).toMatch(/already in use/);
    }
    expect(await h.queue.countJobs()).toBe(jobs);
    const row = await h.db.volume.findUniqueOrThrow({ where: { id: second } });
    expect([row.state, row.instanceId, row.target]).toEqual(['available', null, null]);

    // Concurrent attaches of two volumes under two aliases of one free device: exactly one.
    const raced = await Promise.all([attach(second, '/dev/sdg'), attach(third, '/dev/xvdg')]);
    expect(raced.map((r) => r.status).sort()).toEqual([202, 400]);
    // And the database refuses a second volume on one target whoever writes it.
    await expect(
      h.db.volume.update({
        where: { id: raced[0]!.status === 202 ? third : second },
        data: { instanceId, device: '/dev/xvdg', target: 'vdg' },
      }),
    ).rejects.toMatchObject({ code: 'P2002' });
  });

  it.each([
    ['loopback', { cidr: '127.0.0.0/30' }, /loopback/],
    ['loopback as a range', { firstIp: '126.255.255.254', lastIp: '127.0.0.1' }, /loopback/],
    ['multicast', { cidr: '224.0.0.0/28' }, /multicast/],
    ['link-local', { cidr: '169.254.169.248/29' }, /link-local/],
    ['"this network"', { cidr: '0.0.0.0/30' }, /this network/],
    [
      'the broadcast address',
      { firstIp: '255.255.255.250', lastIp: '255.255.255.255' },
      /reserved/,
    ],
    ['class E', { cidr: '240.0.0.0/28' }, /reserved/],
    [
      "the uplink's own address",
      { cidr: '203.0.113.0/29' },
      /203\.0\.113\.5, an address of the uplink/,
    ],
    ["the uplink's gateway", { firstIp: '203.0.113.1', lastIp: '203.0.113.1' }, /gateway/],
    ["the uplink subnet's broadcast", { cidr: '203.0.113.248/29' }, /broadcast address of/],
  ])('refuses a public IPv4 pool holding %s: 400, no pool', async (_what, body, message) => {
    settings().uplinkAddresses = [
      { ip: '203.0.113.5', what: 'an address of the uplink up0' },
      { ip: '203.0.113.1', what: 'a gateway of the uplink up0' },
      { ip: '203.0.113.255', what: "the broadcast address of up0's subnet" },
    ];
    try {
      const before = await h.db.publicIpv4Pool.count();
      const r = await h.client.request('POST', '/v1/public-ipv4-pools', body);
      expect([r.status, r.body.error?.code]).toEqual([400, 'InvalidParameterValue']);
      expect(r.body.error.message).toMatch(message);
      expect(await h.db.publicIpv4Pool.count()).toBe(before);
      // The same rule for the pool from the settings (MINICLOUD_ELASTIC_IP_POOL) at start.
      const setting = 'cidr' in body ? body.cidr : `${body.firstIp}-${body.lastIp}`;
      await expect(new AddressService(h).ensurePool(setting)).rejects.toMatchObject({
        code: 'InvalidParameterValue',
      });
      expect(await h.db.publicIpv4Pool.count()).toBe(before);
    } finally {
      delete settings().uplinkAddresses;
    }
  });

  it('accepts a pool beside the uplink addresses', async () => {
    settings().uplinkAddresses = [{ ip: '203.0.113.5', what: 'an address of the uplink up0' }];
    try {
      const r = await h.client.request('POST', '/v1/public-ipv4-pools', {
        cidr: '203.0.113.16/28',
      });
      expect(r.status).toBe(201);
    } finally {
      delete settings().uplinkAddresses;
    }
  });

  it('refuses user data above the one limit the seed builder keeps, whatever the setting says', async () => {
    const imageId = newId('image');
    await h.db.image.create({
      data: {
        id: imageId,
        name: 'userdata',
        state: 'available',
        source: '/dev/null',
        format: 'qcow2',
        path: '/x',
      },
    });
    const saved = settings().maxUserDataBytes;
    settings().maxUserDataBytes = 4 * MAX_USER_DATA_BYTES;
    try {
      const launch = (bytes: number) =>
        h.client.request('POST', '/v1/instances', {
          imageId,
          instanceType: 't3.micro',
          userData: Buffer.alloc(bytes, 0x41).toString('base64'),
        });
      const before = await h.db.instance.count();
      const over = await launch(MAX_USER_DATA_BYTES + 1);
      expect([over.status, over.body.error?.code]).toEqual([400, 'InvalidParameterValue']);
      expect(await h.db.instance.count()).toBe(before);
      expect((await launch(MAX_USER_DATA_BYTES)).status).toBe(202);
    } finally {
      settings().maxUserDataBytes = saved;
    }
  });
});
