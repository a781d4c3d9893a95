/**
 * Soak benchmark (issue 11; a benchmark, not a test): launch/terminate cycles on libvirt's
 * test:///default with the API and the worker as separate processes. Prints how the host's
 * objects of the installation compare with their baseline (taps, instance directories, DHCP
 * reservations, nft ruleset lines) and how much the API's and the worker's RSS grew.
 *
 *   bash scripts/soak.sh [cycles=1000] [batch=20]
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { run } from '@minicloud/host';
import { startMinicloud, type MinicloudUnderTest } from '@minicloud/testkit/minicloud-process';

const cycles = Number(process.argv[2] ?? 1000);
const batch = Number(process.argv[3] ?? 20);
const sleep = (t: number) => new Promise((r) => setTimeout(r, t));

async function rssMiB(child: { pid?: number | undefined }): Promise<number> {
  const status = await readFile(`/proc/${child.pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) / 1024;
}

/** Everything of the installation on the host that a launch makes and a terminate removes. */
async function hostObjects(mc: MinicloudUnderTest) {
  const links = (await run('ip', ['-o', 'link', 'show'])).stdout
    .split('\n')
    .map((l) => l.split(': ')[1]?.split('@')[0] ?? '')
    .filter((n) => n.startsWith(`${mc.prefix}t`));
  const instanceDirs = await readdir(join(mc.dataDir, 'instances')).catch(() => []);
  let reservations = 0;
  for (const vpc of await readdir(join(mc.dataDir, 'networks')).catch(() => [])) {
    const hosts = await readFile(join(mc.dataDir, 'networks', vpc, 'dhcp-hosts'), 'utf8').catch(
      () => '',
    );
    reservations += hosts.split('\n').filter(Boolean).length;
  }
  const nftLines = (await run('nft', ['list', 'ruleset'])).stdout
    .split('\n')
    .filter((l) => l.includes(mc.prefix)).length;
  return { taps: links.length, instanceDirs: instanceDirs.length, reservations, nftLines };
}

async function until(mc: MinicloudUnderTest, ids: string[], state: string) {
  for (;;) {
    const { instances } = await mc.client.describeInstances(`?instanceId=${ids.join(',')}`);
    if (instances.every((i: any) => i.state.name === state)) return;
    const failed = instances.find(
      (i: any) => i.state.name === 'terminated' && state !== 'terminated',
    );
    if (failed) throw new Error(`${failed.instanceId} terminated: ${failed.stateReason}`);
    await sleep(100);
  }
}

async function cycle(mc: MinicloudUnderTest, imageId: string, n: number) {
  const r = await mc.client.runInstances({ imageId, instanceType: 't3.nano', minCount: n });
  const ids: string[] = r.instances.map((i: any) => i.instanceId);
  await until(mc, ids, 'running');
  await Promise.all(ids.map((id) => mc.client.call('DELETE', `/v1/instances/${id}`)));
  await until(mc, ids, 'terminated');
}

const mc = await startMinicloud({
  role: 'split',
  extraEnv: {
    MINICLOUD_LIBVIRT_URI: 'test:///default',
    MINICLOUD_VIRT_TYPE: 'test',
    MINICLOUD_WORKER_CONCURRENCY: '32',
    MINICLOUD_RECONCILE_INTERVAL_SECONDS: '30',
    MINICLOUD_STOP_TIMEOUT_SECONDS: '0',
  },
});
try {
  const [worker, api] = mc.processes;
  if (!worker || !api) throw new Error('expected a worker and an API process');
  let imageId: string;
  for (;;) {
    const image = (await mc.client.call('GET', '/v1/images')).images.find((i: any) => i.isDefault);
    if (image?.state === 'available') {
      imageId = image.imageId;
      break;
    }
    await sleep(200);
  }
  // Warm up (JIT, pools, caches) before the baseline.
  for (let i = 0; i < 3; i++) await cycle(mc, imageId, batch);
  await sleep(2000); // the last terminates' host work settles, as after the run
  const baseline = await hostObjects(mc);
  const rss0 = { api: await rssMiB(api), worker: await rssMiB(worker) };
  const t0 = performance.now();
  for (let done = 0; done < cycles; done += batch)
    await cycle(mc, imageId, Math.min(batch, cycles - done));
  const seconds = (performance.now() - t0) / 1000;
  await sleep(2000); // let the last deletes settle
  const after = await hostObjects(mc);
  const rss1 = { api: await rssMiB(api), worker: await rssMiB(worker) };
  const growth = (a: number, b: number) => `${(((b - a) / a) * 100).toFixed(1)}%`;
  console.log(
    `soak: ${cycles} launch/terminate cycles (batches of ${batch}) in ${seconds.toFixed(0)} s`,
  );
  console.log(`  host objects before ${JSON.stringify(baseline)}`);
  console.log(`  host objects after  ${JSON.stringify(after)}`);
  console.log(
    `  RSS api ${rss0.api.toFixed(0)} -> ${rss1.api.toFixed(0)} MiB (${growth(rss0.api, rss1.api)}), ` +
      `worker ${rss0.worker.toFixed(0)} -> ${rss1.worker.toFixed(0)} MiB (${growth(rss0.worker, rss1.worker)}) (goal < 10%)`,
  );
  const same = JSON.stringify(baseline) === JSON.stringify(after);
  console.log(`  host objects back to baseline: ${same ? 'yes' : 'NO'}`);
} finally {
  await mc.destroy();
}
