import { chmod, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { newId } from '@minicloud/domain';
import { run, removePath } from '@minicloud/host';
import { buildDomainXml } from '@minicloud/hypervisor';
import { buildSeedDocuments, writeSeedIso } from '@minicloud/cloudinit';
import { ensureOverlay } from '@minicloud/storage';
import { macForInstance, vpcBridgeName } from '@minicloud/network';
import { startApiOnly } from '../tests/support/api-harness.js';
import {
  startMinicloud,
  testImagePath,
  type MinicloudUnderTest,
} from '../tests/support/minicloud-process.js';
import { sshExec, waitForSsh } from '../tests/support/ssh.js';

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
    await chmod(dir, 0o755); // QEMU (libvirt-qemu) must reach the files
    const { vpcs } = await mc.client.call('GET', '/v1/vpcs');
    const bridge = vpcBridgeName(mc.prefix, vpcs.find((v: any) => v.isDefault).vpcId);
    const bare: number[] = [];
    try {
      for (let i = 0; i < n; i++) {
        // A fresh tap each time, as minicloud makes one per instance.
        // Not named with the installation prefix: its reconciler would remove an unknown tap.
        const tap = `mcbench${i}`;
        await run('ip', ['tuntap', 'add', 'dev', tap, 'mode', 'tap']);
        await run('ip', ['link', 'set', tap, 'master', bridge, 'up']);
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
          name: `mcbench-${i}`,
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
        await run('virsh', ['-c', 'qemu:///system', 'destroy', `mcbench-${i}`]);
        await run('ip', ['link', 'del', tap]);
      }
    } finally {
      for (let i = 0; i < n; i++) await run('ip', ['link', 'del', `mcbench${i}`]).catch(() => {});
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
      MINICLOUD_WORKER_CONCURRENCY: '32',
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
    const accepted = performance.now() - t0;
    for (;;) {
      const { instances } = await mc.client.describeInstances(`?state=running`);
      if (instances.length >= n) break;
      await sleep(10);
    }
    const seconds = (performance.now() - t0) / 1000;
    console.log(
      `(c) ${n} launches on test:///default in ${seconds.toFixed(2)} s: ${(n / seconds).toFixed(1)} launches/s (goal >= 20/s); API accepted the request in ${ms(accepted)}`,
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
        vpcId: 'default',
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

/** (e) Volumes on the file driver: create, attach, snapshot, create-from-snapshot for 10 GiB; guest throughput. */
async function benchVolumes(n = 3) {
  const mc = await startMinicloud();
  try {
    const c = mc.client;
    const imageId = await availableImage(mc);
    const key = (await c.createKeyPair('bench-vol')).keyMaterial as string;
    const r = await c.runInstances({ imageId, instanceType: 't3.nano', keyName: 'bench-vol' });
    const id = r.instances[0].instanceId;
    const ip = (await untilState(mc, id, 'running')).privateIpAddress;
    await waitForSsh(ip, key, 'true', 180_000);
    const volState = async (vid: string, want: (v: any) => boolean) => {
      for (;;) {
        const v = await c.call('GET', `/v1/volumes/${vid}`);
        if (want(v)) return v;
        if (v.state === 'error') throw new Error(v.stateReason);
        await sleep(5);
      }
    };
    const timed = async (f: () => Promise<unknown>) => {
      const t0 = performance.now();
      await f();
      return performance.now() - t0;
    };
    const create: number[] = [];
    const attach: number[] = [];
    const snapshot: number[] = [];
    const fromSnapshot: number[] = [];
    const detach: number[] = [];
    for (let i = 0; i < n; i++) {
      let vid = '';
      create.push(
        await timed(async () => {
          vid = (await c.call('POST', '/v1/volumes', { size: 10 })).volumeId;
          await volState(vid, (v) => v.state === 'available');
        }),
      );
      attach.push(
        await timed(async () => {
          await c.call('POST', `/v1/volumes/${vid}/attach`, { instanceId: id, device: '/dev/sdf' });
          await volState(vid, (v) => v.attachments[0]?.state === 'attached');
        }),
      );
      let sid = '';
      snapshot.push(
        await timed(async () => {
          sid = (await c.call('POST', '/v1/snapshots', { volumeId: vid })).snapshotId;
          for (;;) {
            const s = await c.call('GET', `/v1/snapshots/${sid}`);
            if (s.state === 'completed') break;
            if (s.state === 'error') throw new Error(s.stateReason);
            await sleep(5);
          }
        }),
      );
      let rid = '';
      fromSnapshot.push(
        await timed(async () => {
          rid = (await c.call('POST', '/v1/volumes', { snapshotId: sid, size: 10 })).volumeId;
          await volState(rid, (v) => v.state === 'available');
        }),
      );
      detach.push(
        await timed(async () => {
          await c.call('POST', `/v1/volumes/${vid}/detach`, {});
          await volState(vid, (v) => v.state === 'available');
        }),
      );
      for (const x of [vid, rid]) await c.call('DELETE', `/v1/volumes/${x}`);
      await c.call('DELETE', `/v1/snapshots/${sid}`);
    }
    console.log(
      `(e) 10 GiB volumes, file driver, p50 of ${n} (API call -> done): create ${ms(pct(create, 50))}, attach (hot-plug) ${ms(pct(attach, 50))}, ` +
        `live snapshot (attached, running guest) ${ms(pct(snapshot, 50))}, create from snapshot ${ms(pct(fromSnapshot, 50))}, detach ${ms(pct(detach, 50))}`,
    );
    // Guest throughput: a sequential direct read of 256 MiB, with no limit (standard) and gp3 at 125 MiB/s.
    for (const spec of [
      { volumeType: 'standard', size: 10 },
      { volumeType: 'gp3', size: 10, throughput: 125 },
    ]) {
      const vid = (await c.call('POST', '/v1/volumes', spec)).volumeId;
      await volState(vid, (v) => v.state === 'available');
      await c.call('POST', `/v1/volumes/${vid}/attach`, { instanceId: id, device: '/dev/sdg' });
      await volState(vid, (v) => v.attachments[0]?.state === 'attached');
      let dev = '';
      for (let i = 0; i < 200 && !dev; i++) {
        dev = (
          await sshExec(
            ip,
            key,
            `for d in /sys/block/vd*; do [ "$(cat $d/serial)" = "${vid.replace('-', '')}" ] && basename $d; done; true`,
          )
        ).trim();
        if (!dev) await sleep(100);
      }
      await sshExec(
        ip,
        key,
        `dd if=/dev/zero of=/dev/${dev} bs=1M count=256 oflag=direct 2>/dev/null`,
        300_000,
      );
      const t0 = performance.now();
      await sshExec(
        ip,
        key,
        `dd if=/dev/${dev} of=/dev/null bs=1M count=256 iflag=direct 2>/dev/null`,
        300_000,
      );
      const seconds = (performance.now() - t0) / 1000;
      console.log(
        `    guest read throughput, ${spec.volumeType}${spec.throughput ? ` (${spec.throughput} MiB/s limit)` : ' (no limit)'}: ${(256 / seconds).toFixed(0)} MiB/s`,
      );
      await c.call('POST', `/v1/volumes/${vid}/detach`, {});
      await volState(vid, (v) => v.state === 'available');
      await c.call('DELETE', `/v1/volumes/${vid}`);
    }
  } finally {
    await mc.destroy();
  }
}

const wanted = new Set(
  process.argv.slice(2).length ? process.argv.slice(2) : ['a', 'b', 'c', 'd', 'e'],
);
console.log(
  `minicloud benchmarks on ${(await run('hostname', [])).stdout.trim()}, ${new Date().toISOString()}`,
);
if (wanted.has('d')) await benchDescribe();
if (wanted.has('c')) await benchTestDriver();
if (wanted.has('a')) await benchLaunchVsVirsh();
if (wanted.has('b')) await benchSsh();
if (wanted.has('e')) await benchVolumes();
process.exit(0);
