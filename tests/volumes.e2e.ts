import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import {
  defaultImage,
  destroyAndListLeftovers,
  sleep,
  sshExec,
  startMinicloud,
  until,
  waitForSsh,
  type MinicloudUnderTest,
} from '@minicloud/testkit';

const serialOf = (volumeId: string) => volumeId.replace('-', '');

/** The guest's block device (vdX) whose serial is the volume's, or '' when there is none. */
const findDisk = (ip: string, key: string, volumeId: string) =>
  sshExec(
    ip,
    key,
    `for d in /sys/block/vd*; do [ "$(cat $d/serial 2>/dev/null)" = "${serialOf(volumeId)}" ] && basename $d; done; true`,
  ).then((s) => s.trim());

describe('EBS-style volumes on real guests (file driver)', () => {
  let mc: MinicloudUnderTest;
  afterAll(async () => {
    expect(await destroyAndListLeftovers(mc)).toEqual([]);
  });

  it('attach, move, snapshot under load, grow, survive stop/start, and delete without leftovers', async () => {
    mc = await startMinicloud({ role: 'split' });
    const c = mc.client;
    const image = await defaultImage(mc);
    const key = (await c.createKeyPair('vol-key')).keyMaterial as string;
    const launch = (extra: Record<string, unknown> = {}) =>
      c.runInstances({
        imageId: image.imageId,
        instanceType: 't3.nano',
        keyName: 'vol-key',
        ...extra,
      });
    const a = (
      await launch({
        blockDeviceMappings: [
          { deviceName: '/dev/sdg', ebs: { volumeSize: 1, deleteOnTermination: false } },
        ],
      })
    ).instances[0];
    const b = (await launch()).instances[0];
    const [ra, rb] = await Promise.all([
      c.waitForInstanceState(a.instanceId, ['running'], 180_000),
      c.waitForInstanceState(b.instanceId, ['running'], 180_000),
    ]);
    const ipA = ra.privateIpAddress;
    const ipB = rb.privateIpAddress;
    await Promise.all([
      waitForSsh(ipA, key, 'true', 180_000),
      waitForSsh(ipB, key, 'true', 180_000),
    ]);

    // The root disk is a volume too; the launch-time data volume is in the guest.
    const rootA = ra.blockDeviceMappings.find((m: any) => m.deviceName === '/dev/xvda').ebs;
    expect(rootA).toMatchObject({ deleteOnTermination: true, status: 'attached' });
    const sdg = ra.blockDeviceMappings.find((m: any) => m.deviceName === '/dev/sdg').ebs;
    expect(sdg.deleteOnTermination).toBe(false);
    expect(await findDisk(ipA, key, sdg.volumeId)).toMatch(/^vd[a-z]$/);

    // A new 1 GiB volume, hot-plugged into the running instance A.
    const v = await c.call('POST', '/v1/volumes', { size: 1 });
    await until(
      'volume available',
      async () => (await c.call('GET', `/v1/volumes/${v.volumeId}`)).state === 'available',
    );
    await c.call('POST', `/v1/volumes/${v.volumeId}/attach`, {
      instanceId: a.instanceId,
      device: '/dev/sdf',
    });
    await until(
      'attached',
      async () =>
        (await c.call('GET', `/v1/volumes/${v.volumeId}`)).attachments[0]?.state === 'attached',
    );
    const devA = await until('disk in guest A', () => findDisk(ipA, key, v.volumeId));
    const sum = (
      await sshExec(
        ipA,
        key,
        `dd if=/dev/urandom of=/root/pattern bs=1M count=4 2>/dev/null && dd if=/root/pattern of=/dev/${devA} bs=1M conv=fsync 2>/dev/null && md5sum < /root/pattern`,
      )
    ).trim();

    // Detach, attach to B, read the same bytes.
    await c.call('POST', `/v1/volumes/${v.volumeId}/detach`, {});
    await until(
      'detached',
      async () => (await c.call('GET', `/v1/volumes/${v.volumeId}`)).state === 'available',
    );
    expect(await findDisk(ipA, key, v.volumeId)).toBe('');
    await c.call('POST', `/v1/volumes/${v.volumeId}/attach`, {
      instanceId: b.instanceId,
      device: '/dev/sdf',
    });
    const devB = await until('disk in guest B', () => findDisk(ipB, key, v.volumeId));
    expect(
      (await sshExec(ipB, key, `dd if=/dev/${devB} bs=1M count=4 2>/dev/null | md5sum`)).trim(),
    ).toBe(sum);

    // A file system with data, then a snapshot while a writer keeps writing.
    await sshExec(
      ipB,
      key,
      `mkfs.ext4 -q -F /dev/${devB} && mkdir -p /mnt/v && mount /dev/${devB} /mnt/v && echo before-snapshot > /mnt/v/marker && sync`,
    );
    await sshExec(
      ipB,
      key,
      `nohup sh -c 'i=0; while true; do echo $i >> /mnt/v/log; i=$((i+1)); done' >/dev/null 2>&1 & echo $! > /root/writer.pid`,
    );
    await sleep(500);
    const snap = await c.call('POST', '/v1/snapshots', {
      volumeId: v.volumeId,
      description: 'under load',
    });
    await until(
      'snapshot completed',
      async () => (await c.call('GET', `/v1/snapshots/${snap.snapshotId}`)).state === 'completed',
      300_000,
    );
    await sshExec(ipB, key, 'kill $(cat /root/writer.pid); sync');
    expect(Number((await sshExec(ipB, key, 'wc -l < /mnt/v/log')).trim())).toBeGreaterThan(0);

    // A volume from the snapshot, in instance A: clean file system, the data from before.
    const fromSnap = await c.call('POST', '/v1/volumes', { snapshotId: snap.snapshotId });
    expect(fromSnap.size).toBe(1);
    await until(
      'restored volume available',
      async () => (await c.call('GET', `/v1/volumes/${fromSnap.volumeId}`)).state === 'available',
    );
    await c.call('POST', `/v1/volumes/${fromSnap.volumeId}/attach`, {
      instanceId: a.instanceId,
      device: '/dev/sdh',
    });
    const devRestored = await until('restored disk in guest A', () =>
      findDisk(ipA, key, fromSnap.volumeId),
    );
    // Mounting replays the journal (crash-consistent, like after a power cut); then fsck is clean.
    const check = await sshExec(
      ipA,
      key,
      `mkdir -p /mnt/r && mount /dev/${devRestored} /mnt/r && cat /mnt/r/marker && umount /mnt/r && e2fsck -fn /dev/${devRestored} >/dev/null 2>&1 && echo clean`,
    );
    expect(check.split('\n').filter(Boolean)).toEqual(['before-snapshot', 'clean']);

    // Grow the attached volume of the running instance B: the guest sees the new size.
    await c.call('PATCH', `/v1/volumes/${v.volumeId}`, { size: 2 });
    await until('grown', async () => (await c.call('GET', `/v1/volumes/${v.volumeId}`)).size === 2);
    await until(
      'new size in guest',
      async () =>
        Number((await sshExec(ipB, key, `cat /sys/block/${devB}/size`)).trim()) * 512 ===
        2 * 1024 ** 3,
    );

    // Stop/start keeps A's attachments.
    await c.call('POST', `/v1/instances/${a.instanceId}/stop`, {});
    await c.waitForInstanceState(a.instanceId, ['stopped'], 120_000);
    await c.call('POST', `/v1/instances/${a.instanceId}/start`);
    await c.waitForInstanceState(a.instanceId, ['running'], 120_000);
    await waitForSsh(ipA, key, 'true', 180_000);
    expect(await findDisk(ipA, key, sdg.volumeId)).toMatch(/^vd[a-z]$/);
    expect(await findDisk(ipA, key, fromSnap.volumeId)).toMatch(/^vd[a-z]$/);

    // Terminate A: its root volume goes, the data volumes stay and become available.
    await c.call('DELETE', `/v1/instances/${a.instanceId}`);
    await c.waitForInstanceState(a.instanceId, ['terminated'], 120_000);
    const vols = (await c.call('GET', '/v1/volumes')).volumes;
    expect(vols.find((x: any) => x.volumeId === rootA.volumeId)).toBeUndefined();
    expect(vols.find((x: any) => x.volumeId === sdg.volumeId)?.state).toBe('available');
    expect(vols.find((x: any) => x.volumeId === fromSnap.volumeId)?.state).toBe('available');

    // Delete everything: no volume or snapshot file is left.
    await sshExec(ipB, key, 'umount /mnt/v').catch(() => {});
    await c.call('DELETE', `/v1/instances/${b.instanceId}`);
    await c.waitForInstanceState(b.instanceId, ['terminated'], 120_000);
    for (const x of (await c.call('GET', '/v1/volumes')).volumes) {
      await until(
        `${x.volumeId} deletable`,
        async () => (await c.request('DELETE', `/v1/volumes/${x.volumeId}`)).status === 202,
      );
    }
    await c.call('DELETE', `/v1/snapshots/${snap.snapshotId}`);
    await until('volume files gone', async () => {
      const files = [
        ...(await readdir(join(mc.dataDir, 'volumes'))),
        ...(await readdir(join(mc.dataDir, 'snapshots'))),
      ].filter((f) => !f.startsWith('.'));
      return files.length === 0;
    });
    expect((await c.call('GET', '/v1/volumes')).volumes).toEqual([]);
  });
});
