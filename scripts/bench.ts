import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { newId } from '@minicloud/domain';
import { run, removePath } from '@minicloud/host';
import { buildDomainXml } from '@minicloud/hypervisor';
import { buildSeedDocuments, writeSeedIso } from '@minicloud/cloudinit';
import { ensureOverlay } from '@minicloud/storage';
import { macForInstance } from '@minicloud/network';
import { startApiOnly } from '../tests/support/api-harness.js';
import {
  startMinicloud,
  testImagePath,
  type MinicloudUnderTest,
} from '../tests/support/minicloud-process.js';
import { waitForSsh } from '../tests/support/ssh.js';

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
};
const ms = (x: number) => `${x.toFixed(0)} ms`;
const sleep = (t: number) => new Promise((r) => setTimeout(r, t));

async function availableImage(mc: MinicloudUnderTest) {
  for (;;) {
    const image = (await mc.client.call('GET', '/v1/images')).images.find((i: any) => i.isDefault);
    if (image?.state === 'available') return image.imageId as string;
    if (image?.state === 'failed') throw new Error(image.stateReason);
    await sleep(100);
  }
}

async function untilState(mc: MinicloudUnderTest, id: string, state: string, pollMs = 5) {
  for (;;) {
    const i = await mc.client.describeInstance(id);
    if (i.state.name === state) return i;
    if (i.state.name === 'terminated') throw new Error(`${id} terminated: ${i.stateReason}`);
    await sleep(pollMs);
  }
}

/** (a) API call -> domain running, next to a bare `virsh create` of the same XML. */
async function benchLaunchVsVirsh(n = 10) {
  const mc = await startMinicloud({ extraEnv: { MINICLOUD_STOP_TIMEOUT_SECONDS: '0' } });
  try {
    const imageId = await availableImage(mc);
    const api: number[] = [];
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      const r = await mc.client.runInstances({ imageId, instanceType: 't3.nano' });
      const id = r.instances[0].instanceId;
      await untilState(mc, id, 'running');
      api.push(performance.now() - t0);
      await mc.client.call('DELETE', `/v1/instances/${id}`);
      await untilState(mc, id, 'terminated', 20);
    }
    // The same domain by hand: overlay, seed and tap made before the clock starts.
    const dir = await mkdtemp(join(tmpdir(), 'minicloud-bench-'));
    const tap = `${mc.prefix}tbench`;
    const bridge = `${mc.prefix}br0`;
    await run('ip', ['tuntap', 'add', 'dev', tap, 'mode', 'tap']);
    await run('ip', ['link', 'set', tap, 'master', bridge, 'up']);
    const bare: number[] = [];
    try {
      for (let i = 0; i < n; i++) {
        const id = newId('instance');
        const disk = join(dir, `${id}.qcow2`);
        const seed = join(dir, `${id}.iso`);
        await ensureOverlay({ path: disk, backingPath: testImagePath(), backingFormat: 'qcow2' });
        await writeSeedIso(
          seed,
          buildSeedDocuments({
            instanceId: id,
            hostname: 'bench',
            publicKeys: [],
            userData: null,
            mac: macForInstance(id),
          }),
        );
        const xml = buildDomainXml({
          name: `${mc.prefix}-bench-${i}`,
          uuid: crypto.randomUUID(),
          virtType: 'qemu',
          vcpus: 2,
          memoryMiB: 512,
          disks: [
            { path: disk, format: 'qcow2', target: 'vda' },
            { path: seed, format: 'raw', target: 'vdb', readOnly: true },
          ],
          nics: [{ tap, mac: macForInstance(id) }],
          consoleLogPath: join(dir, `${id}.log`),
          metadata: { instanceId: id, instanceType: 't3.nano', imageId: 'ami-00000000000000000' },
        });
        const xmlPath = join(dir, `${id}.xml`);
        await writeFile(xmlPath, xml);
        const t0 = performance.now();
        await run('virsh', ['-c', 'qemu:///system', 'create', xmlPath]);
        bare.push(performance.now() - t0);
        await run('virsh', ['-c', 'qemu:///system', 'destroy', `${mc.prefix}-bench-${i}`]);
      }
    } finally {
      await run('ip', ['link', 'del', tap]).catch(() => {});
      await removePath(dir);
    }
    const [a50, a95, b50, b95] = [pct(api, 50), pct(api, 95), pct(bare, 50), pct(bare, 95)];
    console.log(
      `(a) API call -> domain running over ${n} launches: p50 ${ms(a50)}, p95 ${ms(a95)}`,
    );
    console.log(
      `    bare virsh create (same XML, overlay+seed by hand): p50 ${ms(b50)}, p95 ${ms(b95)}`,
    );
    console.log(
      `    ratio p50 ${(a50 / b50).toFixed(2)} (goal <= 1.3), difference p50 ${ms(a50 - b50)} (goal <= 150 ms)`,
    );
  } finally {
    await mc.destroy();
  }
}

/** (b) API call -> SSH-ready for the test image. */
async function benchSsh(n = 3) {
  const mc = await startMinicloud();
  try {
    const imageId = await availableImage(mc);
    const key = await mc.client.createKeyPair('bench');
    const times: number[] = [];
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      const r = await mc.client.runInstances({
        imageId,
        instanceType: 't3.nano',
        keyName: 'bench',
      });
      const id = r.instances[0].instanceId;
      const running = await untilState(mc, id, 'running');
      await waitForSsh(running.privateIpAddress, key.keyMaterial, 'true', 180_000);
      times.push(performance.now() - t0);
      await mc.client.call('DELETE', `/v1/instances/${id}`);
      await untilState(mc, id, 'terminated', 20);
    }
    console.log(
      `(b) API call -> SSH ready (test image, TCG) over ${n}: p50 ${ms(pct(times, 50))}, max ${ms(Math.max(...times))}`,
    );
  } finally {
    await mc.destroy();
  }
}

/** (c) Launches per second on libvirt's test:///default driver (control plane only). */
async function benchTestDriver(n = 50) {
  const mc = await startMinicloud({
    extraEnv: {
      MINICLOUD_LIBVIRT_URI: 'test:///default',
      MINICLOUD_VIRT_TYPE: 'test',
      MINICLOUD_WORKER_CONCURRENCY: '16',
    },
  });
  try {
    const imageId = await availableImage(mc);
    const t0 = performance.now();
    const r = await mc.client.runInstances({
      imageId,
      instanceType: 't3.nano',
      minCount: n,
      maxCount: n,
    });
    const ids: string[] = r.instances.map((i: any) => i.instanceId);
    for (;;) {
      const { instances } = await mc.client.describeInstances(`?state=running`);
      if (instances.length >= n) break;
      await sleep(10);
    }
    const seconds = (performance.now() - t0) / 1000;
    console.log(
      `(c) ${n} launches on test:///default in ${seconds.toFixed(2)} s: ${(n / seconds).toFixed(1)} launches/s (goal >= 20/s)`,
    );
    await Promise.all(ids.map((id) => mc.client.call('DELETE', `/v1/instances/${id}`)));
    for (const id of ids) await untilState(mc, id, 'terminated', 20);
  } finally {
    await mc.destroy();
  }
}

/** (d) GET /v1/instances latency with 1000 instances in the database. */
async function benchDescribe(count = 1000, requests = 200) {
  const h = await startApiOnly({ networkCidr: '10.251.0.0/16' });
  try {
    const imageId = newId('image');
    await h.db.image.create({
      data: {
        id: imageId,
        name: 'bench',
        state: 'available',
        source: '/x',
        format: 'qcow2',
        path: '/x',
      },
    });
    const reservationId = newId('reservation');
    await h.db.reservation.create({ data: { id: reservationId, requestHash: 'x' } });
    const rows = Array.from({ length: count }, (_, i) => {
      const id = newId('instance');
      return {
        id,
        reservationId,
        imageId,
        instanceType: 't3.micro',
        vcpus: 2,
        memoryMiB: 1024,
        state: 'running',
        privateIp: `10.251.${Math.floor((i + 2) / 256)}.${(i + 2) % 256}`,
        macAddress: macForInstance(id),
        network: 'default',
      };
    });
    await h.db.instance.createMany({ data: rows });
    await h.db.tag.createMany({
      data: rows.map((r, i) => ({ resourceId: r.id, key: 'Name', value: `vm-${i}` })),
    });
    const times: number[] = [];
    for (let i = 0; i < requests; i++) {
      const t0 = performance.now();
      const { instances } = await h.client.describeInstances();
      times.push(performance.now() - t0);
      if (instances.length !== count) throw new Error(`expected ${count}, got ${instances.length}`);
    }
    console.log(
      `(d) GET /v1/instances with ${count} instances, ${requests} requests: p50 ${ms(pct(times, 50))}, p95 ${pct(times, 95).toFixed(1)} ms (goal p95 < 50 ms)`,
    );
  } finally {
    await h.close();
  }
}

const wanted = new Set(process.argv.slice(2).length ? process.argv.slice(2) : ['a', 'b', 'c', 'd']);
console.log(
  `minicloud benchmarks on ${(await run('hostname', [])).stdout.trim()}, ${new Date().toISOString()}`,
);
if (wanted.has('d')) await benchDescribe();
if (wanted.has('c')) await benchTestDriver();
if (wanted.has('a')) await benchLaunchVsVirsh();
if (wanted.has('b')) await benchSsh();
process.exit(0);
