import { chmod, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { macForInstance, newId, vpcBridgeName } from '@minicloud/domain';
import { run, removePath } from '@minicloud/host';
import { buildDomainXml } from '@minicloud/hypervisor';
import { buildSeedDocuments, writeSeedIso } from '@minicloud/cloudinit';
import { ensureOverlay } from '@minicloud/storage';
import { sqlDialectOf } from '@minicloud/db';
import { startApiOnly } from '@minicloud/testkit/api-harness';
import {
  startMinicloud,
  testImagePath,
  type MinicloudUnderTest,
} from '@minicloud/testkit/minicloud-process';
import { sshExec, waitForSsh } from '@minicloud/testkit/ssh';

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

/**
 * Resolve when the API reports every one of `ids` running, without loading the server with
 * polls while it works (on a small host a client polling every few milliseconds slows the very
 * launches it times: measured, a 20 ms poll added about 0.4 s to a 1.2 s `virsh create`). The
 * worker logs `launched <id>` right after it commits `running`, so the bench watches the
 * server's output (in this process) and then asks the API once, which must confirm. A slow poll
 * of the API is the backstop for a launch that ends any other way.
 */
async function untilRunning(mc: MinicloudUnderTest, ids: string[]): Promise<void> {
  const waiting = new Set(ids);
  let scanned = 0;
  let nextPoll = performance.now() + 500;
  const confirmed = async () => {
    const { instances } = await mc.client.describeInstances(`?instanceId=${ids.join(',')}`);
    const failed = instances.find((i: any) => i.state.name === 'terminated');
    if (failed) throw new Error(`${failed.instanceId} terminated: ${failed.stateReason}`);
    return instances.filter((i: any) => i.state.name === 'running').length === ids.length;
  };
  for (;;) {
    const out = mc.logs();
    for (const m of out.slice(Math.max(0, scanned - 40)).matchAll(/launched (i-[0-9a-f]+)/g))
      waiting.delete(m[1]!);
    scanned = out.length;
    if (waiting.size === 0 && (await confirmed())) return;
    if (performance.now() >= nextPoll) {
      if (await confirmed()) return;
      nextPoll = performance.now() + 500;
    }
    await sleep(2);
  }
}

/** (a) API call -> domain running, next to a bare `virsh create` of the same XML. */
async function benchLaunchVsVirsh(n = 10) {
  const mc = await startMinicloud({
    // The reconciler at its default interval (the tests' 3 s would compete with the launches).
    extraEnv: { MINICLOUD_STOP_TIMEOUT_SECONDS: '0', MINICLOUD_RECONCILE_INTERVAL_SECONDS: '30' },
  });
  const dir = await mkdtemp(join(tmpdir(), 'minicloud-bench-'));
  await chmod(dir, 0o755); // QEMU (libvirt-qemu) must reach the files
  try {
    const imageId = await availableImage(mc);
    const { vpcs } = await mc.client.call('GET', '/v1/vpcs');
    const bridge = vpcBridgeName(mc.prefix, vpcs.find((v: any) => v.isDefault).vpcId);
    /** One launch through the API, from the call until the API reports it running. */
    const viaApi = async () => {
      const t0 = performance.now();
      const r = await mc.client.runInstances({ imageId, instanceType: 't3.nano' });
      const id = r.instances[0].instanceId;
      await untilRunning(mc, [id]);
      const took = performance.now() - t0;
      await mc.client.call('DELETE', `/v1/instances/${id}`);
      await untilState(mc, id, 'terminated', 20);
      return took;
    };
    /** The same domain by hand: overlay, seed and tap made before the clock starts. */
    const bareCreate = async (i: number) => {
      // A fresh tap each time, as minicloud makes one per instance.
      // Not named with the installation prefix: its reconciler would remove an unknown tap.
      const tap = `mcbench${i}`;
      await run('ip', ['tuntap', 'add', 'dev', tap, 'mode', 'tap']);
      try {
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
        const took = performance.now() - t0;
        await run('virsh', ['-c', 'qemu:///system', 'destroy', `mcbench-${i}`]);
        return took;
      } finally {
        await run('ip', ['link', 'del', tap]).catch(() => {});
      }
    };
    // Alternated, so both see the same conditions (the host's load drifts during a run).
    const api: number[] = [];
    const bare: number[] = [];
    for (let i = 0; i < n; i++) {
      api.push(await viaApi());
      bare.push(await bareCreate(i));
    }
    const [a50, a95, b50, b95] = [pct(api, 50), pct(api, 95), pct(bare, 50), pct(bare, 95)];
    console.log(
      `(a) API call -> domain running over ${n} launches: p50 ${ms(a50)}, p95 ${ms(a95)}`,
    );
    console.log(
      `    bare virsh create (same XML, overlay+seed by hand; alternated with the launches): p50 ${ms(b50)}, p95 ${ms(b95)}`,
    );
    console.log(
      `    ratio p50 ${(a50 / b50).toFixed(2)} (goal <= 1.15), difference p50 ${ms(a50 - b50)} (goal <= 100 ms)`,
    );
  } finally {
    await removePath(dir);
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
      MINICLOUD_RECONCILE_INTERVAL_SECONDS: '30',
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
    await untilRunning(mc, ids);
    const seconds = (performance.now() - t0) / 1000;
    console.log(
      `(c) ${n} launches on test:///default in ${seconds.toFixed(2)} s: ${(n / seconds).toFixed(1)} launches/s (goal >= 30/s); API accepted the request in ${ms(accepted)}`,
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
      `(d) GET /v1/instances with ${count} instances on ${sqlDialectOf(h.db)}, ${requests} requests: p50 ${ms(pct(times, 50))}, p95 ${pct(times, 95).toFixed(1)} ms (goal p95 < 50 ms)`,
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

/**
 * (f) and (g): the VPC and security-group rulesets at the issues' sizes (render + apply into
 * tables with a bench-only prefix), by their benchmark scripts in packages/network/bench.
 */
async function benchRuleset(script: string, label: string) {
  console.log(`(${label}) node --import tsx ${script}`);
  const r = await run('node', ['--import', 'tsx', script], { timeoutMs: 600_000 });
  process.stdout.write(r.stdout);
}

/**
 * (h) The whole path on real guests: API call -> first TCP connection through it, seen from a
 * client in a network namespace ("the internet"), for an Elastic IP associate and move, a
 * security-group rule authorize and a membership change. Each guest answers its instance id on
 * port 7070 (user-data), so a probe knows who answered.
 */
async function benchNetworkPath(rounds = 5) {
  const { createFakeInternet } = await import('@minicloud/testkit/fake-internet');
  const { testPrefix } = await import('@minicloud/testkit/api-harness');
  const { IDENTITY_PORT: port, identityUserData } =
    await import('@minicloud/testkit/guest-identity');
  const prefix = testPrefix('mb');
  const inet = await createFakeInternet(prefix);
  let mc: MinicloudUnderTest | null = null;
  try {
    const agent = await inet.startAgent();
    mc = await startMinicloud({
      prefix,
      extraEnv: { MINICLOUD_UPLINK: inet.uplink, MINICLOUD_ELASTIC_IP_POOL: inet.elasticIpPool },
    });
    const c = mc.client;
    const imageId = await availableImage(mc);
    const open = await c.call('POST', '/v1/security-groups', {
      groupName: 'open',
      description: 'b',
    });
    const members = await c.call('POST', '/v1/security-groups', {
      groupName: 'x',
      description: 'b',
    });
    const launched = await c.runInstances({
      imageId,
      instanceType: 't3.nano',
      minCount: 2,
      maxCount: 2,
      securityGroupIds: [open.groupId],
      userData: identityUserData(),
    });
    const ids: string[] = launched.instances.map((i: any) => i.instanceId);
    for (const id of ids) await untilState(mc, id, 'running', 50);
    const eip = await c.call('POST', '/v1/addresses', {});
    const now = () => performance.timeOrigin + performance.now();
    /** Time from `act` to the first connection to eip:port answered by `expect`. */
    const measure = async (expect: string, act: () => Promise<unknown>) => {
      const probe = agent.probe({
        host: eip.publicIp,
        port,
        expect,
        intervalMs: 10,
        attemptTimeoutMs: 500,
        deadlineMs: 60_000,
      });
      await sleep(100);
      const t0 = now();
      await act();
      return (await probe).connectedAt - t0;
    };
    await c.call('POST', `/v1/security-groups/${open.groupId}/ingress`, {
      ipProtocol: 'tcp',
      fromPort: port,
      toPort: port,
      cidrIpv4: '0.0.0.0/0',
    });
    await c.call('POST', `/v1/addresses/${eip.allocationId}/associate`, { instanceId: ids[0] });
    // Warm up: the guest has booted and its identity service answers through the address.
    await agent.probe({ host: eip.publicIp, port, expect: ids[0], deadlineMs: 120_000 });

    /** Wait until `who` no longer answers on the address (the previous change is in effect). */
    const untilNotAnswering = async (who: string) => {
      for (const t0 = Date.now(); Date.now() - t0 < 30_000; await sleep(20)) {
        const r = await agent.connect(eip.publicIp, port, 300);
        if (!r.connected || !r.data.includes(who)) return;
      }
      throw new Error(`${who} still answers on ${eip.publicIp}`);
    };
    const moves: number[] = [];
    const associates: number[] = [];
    const authorizes: number[] = [];
    const memberships: number[] = [];
    for (let i = 0; i < rounds; i++) {
      // Move to the other guest and back.
      const to = ids[(i + 1) % 2]!;
      moves.push(
        await measure(to, () =>
          c.call('POST', `/v1/addresses/${eip.allocationId}/associate`, {
            instanceId: to,
            allowReassociation: true,
          }),
        ),
      );
      await c.call('POST', `/v1/addresses/${eip.allocationId}/disassociate`);
      await untilNotAnswering(to);
      associates.push(
        await measure(to, () =>
          c.call('POST', `/v1/addresses/${eip.allocationId}/associate`, { instanceId: to }),
        ),
      );
      // A rule: revoke the port, then time the authorize.
      const rule = { ipProtocol: 'tcp', fromPort: port, toPort: port, cidrIpv4: '0.0.0.0/0' };
      await c.call('POST', `/v1/security-groups/${open.groupId}/ingress/revoke`, rule);
      await untilNotAnswering(to);
      authorizes.push(
        await measure(to, () =>
          c.call('POST', `/v1/security-groups/${open.groupId}/ingress`, rule),
        ),
      );
      // Membership: the guest leaves 'open' for 'x' (no rules), then comes back.
      await c.call('PUT', `/v1/instances/${to}/security-groups`, {
        securityGroupIds: [members.groupId],
      });
      await untilNotAnswering(to);
      memberships.push(
        await measure(to, () =>
          c.call('PUT', `/v1/instances/${to}/security-groups`, {
            securityGroupIds: [open.groupId],
          }),
        ),
      );
    }
    const line = (what: string, xs: number[]) =>
      console.log(
        `(h) ${what}: p50 ${ms(pct(xs, 50))}, max ${ms(Math.max(...xs))} [${xs.map((x) => x.toFixed(0)).join(', ')}]`,
      );
    line('Elastic IP associate -> first packet through', associates);
    line('Elastic IP move to another instance -> first packet through', moves);
    line('security-group rule authorize -> first packet through', authorizes);
    line('security-group membership change -> first packet through', memberships);
    for (const id of ids) await c.call('DELETE', `/v1/instances/${id}`);
  } finally {
    await mc?.destroy();
    await inet.remove();
  }
}

const wanted = new Set(
  process.argv.slice(2).length ? process.argv.slice(2) : ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'],
);
console.log(
  `minicloud benchmarks on ${(await run('hostname', [])).stdout.trim()}, ${new Date().toISOString()}`,
);
if (wanted.has('d')) await benchDescribe();
if (wanted.has('c')) await benchTestDriver();
if (wanted.has('a')) await benchLaunchVsVirsh();
if (wanted.has('b')) await benchSsh();
if (wanted.has('e')) await benchVolumes();
if (wanted.has('f')) await benchRuleset('packages/network/bench/vpc-ruleset.bench.ts', 'f');
if (wanted.has('g')) await benchRuleset('packages/network/bench/sg-ruleset.bench.ts', 'g');
if (wanted.has('h')) await benchNetworkPath();
process.exit(0);
