import { addAvailableImage, startApiOnly } from '@minicloud/testkit/api-harness';

type Harness = Awaited<ReturnType<typeof startApiOnly>>;

async function counts(h: Harness) {
  const [volumes, snapshots, tags] = await Promise.all([
    h.db.volume.count(),
    h.db.snapshot.count(),
    h.db.tag.count(),
  ]);
  return { volumes, snapshots, tags };
}

describe('volumes API against real SQLite and Redis', () => {
  let h: Harness;
  let imageId: string;
  beforeAll(async () => {
    h = await startApiOnly({ networkCidr: '10.249.0.0/24' });
    imageId = await addAvailableImage(h.db, 3 * 1024 ** 3 + 1);
  });
  afterAll(async () => {
    await h?.close();
  });

  it('creates a gp3 volume with EC2 defaults and tags', async () => {
    const v = await h.client.call('POST', '/v1/volumes', { size: 10, tags: { Name: 'data' } });
    expect(v.volumeId).toMatch(/^vol-[0-9a-f]{17}$/);
    expect(v).toMatchObject({
      size: 10,
      volumeType: 'gp3',
      iops: 3000,
      throughput: 125,
      state: 'creating',
    });
    expect(v.tags).toEqual([{ key: 'Name', value: 'data' }]);
    const listed = await h.client.call('GET', '/v1/volumes');
    expect(listed.volumes.map((x: any) => x.volumeId)).toContain(v.volumeId);
  });

  it.each([
    ['size 0', { size: 0 }, 'InvalidParameterValue'],
    ['size over the maximum', { size: 1025 }, 'InvalidParameterValue'],
    ['no size', {}, 'MissingParameter'],
    ['unknown type', { size: 10, volumeType: 'gp9' }, 'InvalidParameterValue'],
    ['gp3 iops too high for the size', { size: 1, iops: 16000 }, 'InvalidParameterValue'],
    ['gp3 throughput out of range', { size: 10, throughput: 2000 }, 'InvalidParameterValue'],
    ['io2 without iops', { size: 10, volumeType: 'io2' }, 'MissingParameter'],
    ['iops on st1', { size: 200, volumeType: 'st1', iops: 500 }, 'InvalidParameterCombination'],
    ['st1 below 125 GiB', { size: 10, volumeType: 'st1' }, 'InvalidParameterValue'],
    ['unknown snapshot', { snapshotId: 'snap-00000000000000000' }, 'InvalidSnapshot.NotFound'],
    ['fractional size', { size: 1.5 }, 'InvalidParameterValue'],
  ])('refuses %s: 4xx, nothing changed', async (_what, body, code) => {
    const before = await counts(h);
    const r = await h.client.request('POST', '/v1/volumes', body);
    expect(r.status).toBeGreaterThanOrEqual(400);
    expect(r.status).toBeLessThan(500);
    expect(r.body.error.code).toBe(code);
    expect(await counts(h)).toEqual(before);
  });

  it('refuses attach/detach/resize/delete that EC2 would refuse', async () => {
    const v = await h.client.call('POST', '/v1/volumes', { size: 2 });
    // Still creating: not attachable yet.
    const early = await h.client.request('POST', `/v1/volumes/${v.volumeId}/attach`, {
      instanceId: 'i-00000000000000000',
      device: '/dev/sdf',
    });
    expect(early.status).toBe(409);
    await h.db.volume.update({ where: { id: v.volumeId }, data: { state: 'available' } });

    const badDevice = await h.client.request('POST', `/v1/volumes/${v.volumeId}/attach`, {
      instanceId: 'i-00000000000000000',
      device: '/etc/passwd',
    });
    expect(badDevice.status).toBe(400);
    const noInstance = await h.client.request('POST', `/v1/volumes/${v.volumeId}/attach`, {
      instanceId: 'i-00000000000000000',
      device: '/dev/sdf',
    });
    expect(noInstance.status).toBe(404);
    expect(noInstance.body.error.code).toBe('InvalidInstanceID.NotFound');

    const shrink = await h.client.request('PATCH', `/v1/volumes/${v.volumeId}`, { size: 1 });
    expect(shrink.status).toBe(400);
    const detachFree = await h.client.request('POST', `/v1/volumes/${v.volumeId}/detach`, {});
    expect(detachFree.status).toBe(409);
    expect((await h.db.volume.findUnique({ where: { id: v.volumeId } }))?.sizeGiB).toBe(2);
  });

  it('launches with a root volume and extra block device mappings, validated first', async () => {
    const bad = await h.client.request('POST', '/v1/instances', {
      imageId,
      instanceType: 't3.nano',
      blockDeviceMappings: [{ deviceName: '/dev/xvda', ebs: { volumeSize: 1 } }],
    });
    expect(bad.status).toBe(400);
    expect(await h.db.instance.count()).toBe(0);

    const r = await h.client.call('POST', '/v1/instances', {
      imageId,
      instanceType: 't3.nano',
      blockDeviceMappings: [
        { deviceName: '/dev/sdf', ebs: { volumeSize: 5, deleteOnTermination: false } },
        { deviceName: '/dev/xvda', ebs: { volumeSize: 8 } },
      ],
    });
    const instance = r.instances[0];
    expect(instance.rootDeviceName).toBe('/dev/xvda');
    const devices = instance.blockDeviceMappings.map((m: any) => [
      m.deviceName,
      m.ebs.deleteOnTermination,
    ]);
    expect(devices).toEqual([
      ['/dev/sdf', false],
      ['/dev/xvda', true],
    ]);
    const root = await h.db.volume.findFirst({
      where: { instanceId: instance.instanceId, isRoot: true },
    });
    expect(root?.sizeGiB).toBe(8);
    // The list path (raw SQL) shows the same mappings.
    const { instances } = await h.client.describeInstances();
    expect(instances[0].blockDeviceMappings).toEqual(instance.blockDeviceMappings);

    // Attaching a second volume at a device already used on the instance is refused.
    await h.db.instance.update({ where: { id: instance.instanceId }, data: { state: 'running' } });
    const v = await h.client.call('POST', '/v1/volumes', { size: 1 });
    await h.db.volume.update({ where: { id: v.volumeId }, data: { state: 'available' } });
    const taken = await h.client.request('POST', `/v1/volumes/${v.volumeId}/attach`, {
      instanceId: instance.instanceId,
      device: '/dev/sdf',
    });
    expect(taken.status).toBe(400);
    expect(taken.body.error.message).toMatch(/already in use/);
    const ok = await h.client.call('POST', `/v1/volumes/${v.volumeId}/attach`, {
      instanceId: instance.instanceId,
      device: '/dev/sdg',
    });
    expect(ok.state).toBe('attaching');
    const twice = await h.client.request('POST', `/v1/volumes/${v.volumeId}/attach`, {
      instanceId: instance.instanceId,
      device: '/dev/sdh',
    });
    expect(twice.status).toBe(409);
    expect(twice.body.error.code).toBe('VolumeInUse');
    const del = await h.client.request('DELETE', `/v1/volumes/${v.volumeId}`);
    expect(del.status).toBe(409);
    expect(del.body.error.code).toBe('VolumeInUse');
    const rootDetach = await h.client.request('POST', `/v1/volumes/${root!.id}/detach`, {});
    expect(rootDetach.status).toBe(400);
  });

  it('refuses snapshots of deleted or unknown volumes', async () => {
    const missing = await h.client.request('POST', '/v1/snapshots', {
      volumeId: 'vol-00000000000000000',
    });
    expect(missing.status).toBe(404);
    const v = await h.client.call('POST', '/v1/volumes', { size: 1 });
    await h.db.volume.update({ where: { id: v.volumeId }, data: { state: 'deleted' } });
    const gone = await h.client.request('POST', '/v1/snapshots', { volumeId: v.volumeId });
    expect(gone.status).toBe(404);
    expect(gone.body.error.code).toBe('InvalidVolume.NotFound');
  });
});
