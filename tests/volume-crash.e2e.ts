import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { removePath, run } from '@minicloud/host';
import { tmpdir } from 'node:os';
import {
  defaultImage,
  hostLeftovers,
  sleep,
  sshExec,
  startMinicloud,
  until,
  waitForSsh,
  type MinicloudUnderTest,
} from '@minicloud/testkit';

const virshTempDirs = async () =>
  (await readdir(tmpdir())).filter((n) => n.startsWith('minicloud-virsh-'));

describe('a worker killed in the middle of attach or snapshot', () => {
  let mc: MinicloudUnderTest;
  let tempDirsBefore: string[] = [];
  beforeAll(async () => {
    tempDirsBefore = await virshTempDirs();
  });
  afterAll(async () => {
    await mc?.destroy();
    // A SIGKILLed worker cannot remove virsh's temp files (its reconciler sweeps old ones later).
    for (const name of await virshTempDirs()) {
      if (!tempDirsBefore.includes(name)) await removePath(join(tmpdir(), name));
    }
    if (mc)
      expect(
        Object.values(await hostLeftovers(mc.prefix, mc.dataDir, { includeNetwork: true })).flat(),
      ).toEqual([]);
  });

  it('leaves the volume attached or not, never half, and the snapshot whole or absent', async () => {
    mc = await startMinicloud({ role: 'split' });
    const c = mc.client;
    const image = await defaultImage(mc);
    const key = (await c.createKeyPair('crash-key')).keyMaterial as string;
    const id = (
      await c.runInstances({
        imageId: image.imageId,
        instanceType: 't3.nano',
        keyName: 'crash-key',
      })
    ).instances[0].instanceId;
    const ip = (await c.waitForInstanceState(id, ['running'], 180_000)).privateIpAddress;
    await waitForSsh(ip, key, 'true', 180_000);
    const v = await c.call('POST', '/v1/volumes', { size: 1 });
    await until(
      'available',
      async () => (await c.call('GET', `/v1/volumes/${v.volumeId}`)).state === 'available',
    );

    // Attach, and kill the worker at once (SIGKILL: no cleanup of any kind).
    let worker = mc.processes.find((p) => p.spawnargs.includes('worker'))!;
    await c.call('POST', `/v1/volumes/${v.volumeId}/attach`, {
      instanceId: id,
      device: '/dev/sdf',
    });
    await mc.kill(worker, 'SIGKILL');
    worker = await mc.spawnRole('worker');
    const settled = await until('attach settled', async () => {
      const vol = await c.call('GET', `/v1/volumes/${v.volumeId}`);
      const state = vol.attachments[0]?.state ?? 'detached';
      return state === 'attached' || state === 'detached' ? vol : null;
    });
    const domblk = (
      await run('virsh', ['-c', 'qemu:///system', 'domblklist', `${mc.prefix}-${id}`])
    ).stdout;
    const serial = v.volumeId.replace('-', '');
    const inGuest = async () =>
      (
        await sshExec(ip, key, `grep -l ${serial} /sys/block/vd*/serial 2>/dev/null; true`)
      ).trim() !== '';
    if (settled.state === 'in-use') {
      expect(domblk).toContain(v.volumeId);
      expect(await until('disk in guest', inGuest, 30_000)).toBe(true);
    } else {
      expect(settled.state).toBe('available');
      expect(domblk).not.toContain(v.volumeId);
      expect(await inGuest()).toBe(false);
      await c.call('POST', `/v1/volumes/${v.volumeId}/attach`, {
        instanceId: id,
        device: '/dev/sdf',
      });
      await until(
        'attached',
        async () => (await c.call('GET', `/v1/volumes/${v.volumeId}`)).state === 'in-use',
      );
    }

    // Snapshot of the attached volume, worker killed in the middle.
    const snap = await c.call('POST', '/v1/snapshots', { volumeId: v.volumeId });
    await sleep(100);
    await mc.kill(worker, 'SIGKILL');
    await mc.spawnRole('worker');
    const done = await until('snapshot settled', async () => {
      const s = await c.call('GET', `/v1/snapshots/${snap.snapshotId}`);
      return s.state === 'completed' || s.state === 'error' ? s : null;
    });
    expect(done.state).toBe('completed');
    const files = await readdir(join(mc.dataDir, 'snapshots'));
    expect(files).toEqual([`${snap.snapshotId}.qcow2`]);

    await c.call('DELETE', `/v1/instances/${id}`);
    await c.waitForInstanceState(id, ['terminated'], 120_000);
    await until(
      'volume free',
      async () => (await c.request('DELETE', `/v1/volumes/${v.volumeId}`)).status === 202,
    );
    await c.call('DELETE', `/v1/snapshots/${snap.snapshotId}`);
    await until('files gone', async () => {
      const left = [
        ...(await readdir(join(mc.dataDir, 'volumes'))),
        ...(await readdir(join(mc.dataDir, 'snapshots'))),
      ];
      return left.length === 0;
    });
  });
});
