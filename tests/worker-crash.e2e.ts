import { access, mkdir } from 'node:fs/promises';
import { run } from '@minicloud/host';
import { join } from 'node:path';
import {
  defaultImage,
  destroyAndListLeftovers,
  hostLeftovers,
  startMinicloud,
  type MinicloudUnderTest,
} from '@minicloud/testkit';

const exists = (p: string) =>
  access(p).then(
    () => true,
    () => false,
  );

const linkExists = async (name: string) =>
  (await run('ip', ['link', 'show', name], { okExitCodes: [1] })).exitCode === 0;

describe('a worker killed in the middle of a launch', () => {
  let mc: MinicloudUnderTest;
  afterAll(async () => {
    expect(await destroyAndListLeftovers(mc)).toEqual([]);
  });

  it('is finished by the restarted worker, and terminating leaves nothing behind', async () => {
    mc = await startMinicloud({ role: 'split' });
    const image = await defaultImage(mc);
    const worker = mc.processes[0]!;
    const r = await mc.client.runInstances({
      imageId: image.imageId,
      instanceType: 't3.nano',
      minCount: 3,
      maxCount: 3,
    });
    const ids: string[] = r.instances.map((i: any) => i.instanceId);
    // Kill -9 as soon as the first host object of a launch exists: mid-launch.
    const deadline = Date.now() + 30_000;
    while (!(await exists(join(mc.dataDir, 'instances', ids[0]!))) && Date.now() < deadline) {
      await new Promise((res) => setImmediate(res));
    }
    await mc.kill(worker, 'SIGKILL');
    const states = await Promise.all(ids.map((id) => mc.client.describeInstance(id)));
    expect(states.some((s) => s.state.name === 'pending')).toBe(true);

    await mc.spawnRole('worker');
    for (const id of ids) {
      const done = await mc.client.waitForInstanceState(id, ['running', 'terminated'], 180_000);
      expect(done.state.name).toBe('running');
    }
    // Leftovers that nothing references are removed by the reconciler (every 3 s here).
    const orphanTap = `${mc.prefix}t999999999`;
    const orphanDir = join(mc.dataDir, 'instances', 'i-99999999999999999');
    await run('ip', ['tuntap', 'add', 'dev', orphanTap, 'mode', 'tap']);
    await mkdir(orphanDir, { recursive: true });
    for (let i = 0; i < 100 && ((await linkExists(orphanTap)) || (await exists(orphanDir))); i++) {
      await new Promise((res) => setTimeout(res, 200));
    }
    expect(await linkExists(orphanTap)).toBe(false);
    expect(await exists(orphanDir)).toBe(false);

    await Promise.all(ids.map((id) => mc.client.call('DELETE', `/v1/instances/${id}`)));
    for (const id of ids) await mc.client.waitForInstanceState(id, ['terminated'], 120_000);
    expect(
      Object.values(await hostLeftovers(mc.prefix, mc.dataDir, { includeNetwork: false })).flat(),
    ).toEqual([]);
  });
});
