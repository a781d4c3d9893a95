/**
 * The worker's network side against the real things: a real SQLite database (migrations
 * applied), the real LinuxNetworkDriver on the kernel (bridges, dnsmasq, nft), an uplink
 * (a veth pair) this test makes, and libvirt's test:///default driver for the terminate path (no guest
 * runs). Every host object carries the test prefix and is removed in afterAll, also after a
 * failure; ip_forward is restored. eth0 and the host's own tables are never touched.
 *
 * Not safe to run concurrently with the network package's nat/vpc tests (ip_forward): --runInBand.
 */
import { chmod, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  KeyedLock,
  intToIp,
  macForInstance,
  newId,
  parseCidr,
  tapName,
  vpcBridgeName,
  vpcTableName,
} from '@minicloud/domain';
import { run, pathExists } from '@minicloud/host';
import { LibvirtHypervisor } from '@minicloud/hypervisor';
import { dnsmasqPaths, LinuxNetworkDriver, type VpcNetworkModel } from '@minicloud/network';
import type { Db } from '@minicloud/db';
import { freshDatabase, testPrefix } from '@minicloud/testkit/api-harness';
import {
  freeBlocks,
  leftovers,
  readIpForward,
  sweep,
  writeIpForward,
} from '../../../packages/network/test/int-helpers.js';
import type { WorkerDeps } from '../src/context.js';
import { finishTermination } from '../src/jobs/instance-terminate.job.js';
import { convergeNetwork } from '../src/network/converge.js';
import { ensureInstanceNetwork, ensureInstancePort } from '../src/network/instance-ports.js';
import { syncVpcReservations } from '../src/network/reservations.js';
import { removeAllNetworks } from '../src/network/teardown.js';

const T = 60_000;
const P = testPrefix('mw');
const TABLE = vpcTableName(P);
const UPLINK = `${P}u0`;

let dir: string;
let db: Db;
let deps: WorkerDeps;
let hypervisor: LibvirtHypervisor;
let ipForwardBefore: string | null = null;
const driver = new LinuxNetworkDriver({ arpAnnounce: 'none' });
const logs: string[] = [];
const announced: string[] = [];
const timings: string[] = [];

// Rows made in beforeAll.
let imageId: string;
let reservationId: string;
let poolId: string;
const ids = {
  vpcA: newId('vpc'),
  vpcB: newId('vpc'),
  vpcC: newId('vpc'), // no subnets: a bridge without dnsmasq
  subnetA1: newId('subnet'),
  subnetA2: newId('subnet'),
  subnetB1: newId('subnet'),
};
const cidrs = { a: '', b: '', c: '', a1: '', a2: '', a3: '', b1: '', pool: '' };
const eips = { e1: '', e2: '', e3: '' };
let i1: TestInstance; // VPC A subnet 1, auto-assigned Elastic IP e1
let i2: TestInstance; // VPC A subnet 2
let i3: TestInstance; // VPC B

interface TestInstance {
  id: string;
  mac: string;
  ip: string;
  vpcId: string;
  subnetId: string;
  tap: string;
}

const bridge = (vpcId: string) => vpcBridgeName(P, vpcId);
const stateDir = (vpcId: string) => join(deps.settings.networksDir, vpcId);
const host = (cidr: string, n: number) => intToIp(parseCidr(cidr).networkInt + n);

async function addInstance(vpcId: string, subnetId: string, ip: string): Promise<TestInstance> {
  const id = newId('instance');
  const mac = macForInstance(id);
  await db.instance.create({
    data: {
      id,
      reservationId,
      imageId,
      instanceType: 't3.micro',
      vcpus: 1,
      memoryMiB: 512,
      state: 'running',
      privateIp: ip,
      macAddress: mac,
      vpcId,
      subnetId,
      networkInterfaceId: newId('networkInterface'),
      lease: { create: { network: vpcId, ip, mac, subnetId } },
    },
  });
  return { id, mac, ip, vpcId, subnetId, tap: tapName(P, id) };
}

async function addEip(publicIp: string, to: TestInstance | null, autoAssigned = false) {
  const id = newId('elasticIp');
  await db.elasticIp.create({
    data: {
      id,
      publicIp,
      poolId,
      autoAssigned,
      ...(to
        ? {
            associationId: newId('elasticIpAssociation'),
            instanceId: to.id,
            privateIp: to.ip,
            vpcId: to.vpcId,
          }
        : {}),
    },
  });
  return id;
}

async function ipJson(args: string[]): Promise<any[]> {
  const r = await run('ip', ['-j', ...args], { timeoutMs: 10_000, okExitCodes: [1] });
  return r.exitCode === 0 && r.stdout.trim() ? JSON.parse(r.stdout) : [];
}

/** The IPv4 addresses of a link, sorted ([] when it does not exist). */
async function addressesOf(link: string): Promise<string[]> {
  const [l] = await ipJson(['addr', 'show', 'dev', link]);
  return ((l?.addr_info ?? []) as { family: string; local: string; prefixlen: number }[])
    .filter((a) => a.family === 'inet')
    .map((a) => `${a.local}/${a.prefixlen}`)
    .sort();
}

async function linkExists(name: string): Promise<boolean> {
  return (await ipJson(['link', 'show', 'dev', name])).length > 0;
}

async function masterOf(name: string): Promise<string | null> {
  const [l] = await ipJson(['link', 'show', 'dev', name]);
  return l?.master ?? null;
}

/** The VPC table without handles (identical text = identical ruleset). */
async function tableText(): Promise<string> {
  return (await run('nft', ['list', 'table', 'ip', TABLE], { timeoutMs: 10_000 })).stdout;
}

async function dnsmasqByBridge(): Promise<Record<string, number>> {
  const owned = await driver.listOwnedVpcObjects(P);
  return Object.fromEntries(owned.dnsmasq.map((d) => [d.bridge, d.pid]));
}

async function eipState() {
  const s = await driver.readElasticIpState(TABLE);
  return s && { held: [...s.held].sort(), dnat: Object.fromEntries(s.dnat) };
}

async function waitFor(check: () => boolean, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 20));
  }
}

beforeAll(async () => {
  ipForwardBefore = await readIpForward();
  dir = await mkdtemp(join(tmpdir(), `minicloud-test-${P}-`));
  await chmod(dir, 0o755); // dnsmasq (nobody) reaches into the state directories
  db = await freshDatabase(dir);
  hypervisor = new LibvirtHypervisor({ uri: 'test:///default' });
  const networksDir = join(dir, 'networks');
  await mkdir(networksDir, { recursive: true, mode: 0o755 });
  deps = {
    db,
    queue: null as never, // every path here converges directly
    hypervisor,
    network: driver,
    images: null as never,
    volumes: null as never,
    rootVolumes: null as never,
    locks: new KeyedLock(),
    log: (m) => logs.push(m),
    settings: {
      prefix: P,
      virtType: 'test',
      instancesDir: join(dir, 'instances'),
      volumesDir: join(dir, 'volumes'),
      stopTimeoutMs: 1000,
      terminatedRetentionMs: 3600_000,
      networksDir,
      uplink: UPLINK,
    },
  };
  const announce = driver.announceElasticIp.bind(driver);
  driver.announceElasticIp = (spec) => {
    announced.push(spec.publicIp);
    return announce(spec);
  };

  const [a, b, c] = await freeBlocks(3, '10.232.0.0', 20, 4096);
  const [pool] = await freeBlocks(1, '198.18.0.0', 24, 256);
  Object.assign(cidrs, {
    a: a!,
    b: b!,
    c: c!,
    a1: `${host(a!, 0)}/24`,
    a2: `${host(a!, 256)}/24`,
    a3: `${host(a!, 512)}/24`,
    b1: `${host(b!, 0)}/24`,
    pool: pool!,
  });
  Object.assign(eips, { e1: host(pool!, 10), e2: host(pool!, 11), e3: host(pool!, 12) });
  // The "uplink": one end of a veth pair (this kernel has no dummy links); nothing behind it.
  await run('ip', ['link', 'add', UPLINK, 'type', 'veth', 'peer', 'name', `${P}u1`], {
    timeoutMs: 10_000,
  });
  await run('ip', ['addr', 'add', `${host(pool!, 1)}/24`, 'dev', UPLINK], { timeoutMs: 10_000 });
  await run('ip', ['link', 'set', 'dev', UPLINK, 'up'], { timeoutMs: 10_000 });

  imageId = newId('image');
  reservationId = newId('reservation');
  poolId = newId('publicIpv4Pool');
  await db.image.create({
    data: { id: imageId, name: 'img', state: 'available', source: '/dev/null' },
  });
  await db.reservation.create({ data: { id: reservationId, requestHash: 'x' } });
  await db.publicIpv4Pool.create({
    data: { id: poolId, firstIp: host(pool!, 8), lastIp: host(pool!, 63) },
  });
  const vpc = (id: string, cidrBlock: string) => ({
    id,
    cidrBlock,
    bridgeKey: id.slice(4, 13),
    state: 'pending',
  });
  await db.vpc.createMany({
    data: [vpc(ids.vpcA, cidrs.a), vpc(ids.vpcB, cidrs.b), vpc(ids.vpcC, cidrs.c)],
  });
  await db.subnet.createMany({
    data: [
      { id: ids.subnetA1, vpcId: ids.vpcA, cidrBlock: cidrs.a1, state: 'pending' },
      { id: ids.subnetA2, vpcId: ids.vpcA, cidrBlock: cidrs.a2, state: 'pending' },
      { id: ids.subnetB1, vpcId: ids.vpcB, cidrBlock: cidrs.b1, state: 'pending' },
    ],
  });
  await db.internetGateway.create({ data: { id: newId('internetGateway'), vpcId: ids.vpcA } });
  i1 = await addInstance(ids.vpcA, ids.subnetA1, host(cidrs.a1, 10));
  i2 = await addInstance(ids.vpcA, ids.subnetA2, host(cidrs.a2, 10));
  i3 = await addInstance(ids.vpcB, ids.subnetB1, host(cidrs.b1, 10));
  await addEip(eips.e1, i1, true);
  await addEip(eips.e2, null);
  // A bad row: associated into a VPC that no longer exists.
  await db.elasticIp.create({
    data: {
      id: newId('elasticIp'),
      publicIp: eips.e3,
      poolId,
      associationId: newId('elasticIpAssociation'),
      instanceId: newId('instance'),
      privateIp: '10.9.9.9',
      vpcId: newId('vpc'),
    },
  });
}, T);

afterAll(async () => {
  const errors = await sweep(P, []); // dnsmasq, links (bridges, taps, the uplink), nft tables
  if (ipForwardBefore !== null) await writeIpForward(ipForwardBefore);
  await hypervisor?.close();
  await db?.$disconnect();
  if (dir) await rm(dir, { recursive: true, force: true });
  if (errors.length) console.warn(`cleanup problems: ${errors.join('; ')}`);
  if (timings.length) console.log(`network-host timings:\n  ${timings.join('\n  ')}`);
}, T);

describe(`worker network host side (prefix ${P})`, () => {
  test(
    'convergeNetwork makes bridges, router addresses, dnsmasq, reservations, the nft table and Elastic IPs; attaches a detached guest tap',
    async () => {
      // i1's tap exists but hangs on no bridge (as after its bridge was re-created).
      await run('ip', ['tuntap', 'add', 'dev', i1.tap, 'mode', 'tap'], { timeoutMs: 10_000 });

      const t0 = performance.now();
      const r = await convergeNetwork(deps);
      timings.push(`first converge (3 VPCs): ${Math.round(performance.now() - t0)} ms`);

      expect(r.vpcs).toBe(3);
      expect(r.changed).toEqual(
        expect.arrayContaining([
          `attached ${i1.tap} to ${bridge(ids.vpcA)}`,
          `${ids.vpcA}: added ${host(cidrs.a1, 1)}/24 to ${bridge(ids.vpcA)}`,
          `${ids.vpcB}: created bridge ${bridge(ids.vpcB)}`,
        ]),
      );
      expect(r.skipped).toEqual([expect.stringContaining(`association of ${eips.e3}`)]);
      expect(r.elasticIps.added).toEqual([eips.e1, eips.e2, eips.e3]);
      expect(await masterOf(i1.tap)).toBe(bridge(ids.vpcA));

      // bridges and router addresses (first host of each subnet)
      expect(await addressesOf(bridge(ids.vpcA))).toEqual(
        [`${host(cidrs.a1, 1)}/24`, `${host(cidrs.a2, 1)}/24`].sort(),
      );
      expect(await addressesOf(bridge(ids.vpcB))).toEqual([`${host(cidrs.b1, 1)}/24`]);
      expect(await linkExists(bridge(ids.vpcC))).toBe(true);
      expect(await addressesOf(bridge(ids.vpcC))).toEqual([]);
      // one dnsmasq per VPC with subnets
      expect(Object.keys(await dnsmasqByBridge()).sort()).toEqual(
        [bridge(ids.vpcA), bridge(ids.vpcB)].sort(),
      );
      // reservations of each VPC's own instances, hostname ip-a-b-c-d
      const hostsA = await readFile(dnsmasqPaths(stateDir(ids.vpcA)).hostsFile, 'utf8');
      expect(hostsA).toContain(`${i1.mac},${i1.ip},ip-${i1.ip.replaceAll('.', '-')}`);
      expect(hostsA).toContain(`${i2.mac},${i2.ip}`);
      expect(hostsA).not.toContain(i3.mac);
      const hostsB = await readFile(dnsmasqPaths(stateDir(ids.vpcB)).hostsFile, 'utf8');
      expect(hostsB).toContain(`${i3.mac},${i3.ip}`);

      // the nft table: every allocated address held, the good association mapped
      expect(await eipState()).toEqual({
        held: [eips.e1, eips.e2, eips.e3],
        dnat: { [eips.e1]: i1.ip },
      });
      const text = await tableText();
      expect(text).toContain(bridge(ids.vpcA));
      expect(text).toContain(UPLINK);
      // Elastic IPs on the uplink (labelled, /32) and announced
      expect(await driver.listElasticIpAddresses({ uplink: UPLINK, prefix: P })).toEqual(
        [eips.e1, eips.e2, eips.e3].sort(),
      );
      await waitFor(() => [eips.e1, eips.e2, eips.e3].every((e) => announced.includes(e)));

      // pending rows are available now
      expect((await db.vpc.findMany({ where: { state: 'pending' } })).length).toBe(0);
      expect((await db.subnet.findMany({ where: { state: 'pending' } })).length).toBe(0);
    },
    T,
  );

  test(
    'a second converge changes nothing',
    async () => {
      const before = {
        text: await tableText(),
        dnsmasq: await dnsmasqByBridge(),
        a: await addressesOf(bridge(ids.vpcA)),
        uplink: await addressesOf(UPLINK),
      };
      const announcedBefore = announced.length;
      const t0 = performance.now();
      const r = await convergeNetwork(deps);
      timings.push(`converge with nothing to do: ${Math.round(performance.now() - t0)} ms`);
      expect(r.changed).toEqual([]);
      expect(r.removed).toEqual([]);
      expect(r.elasticIps).toEqual({ added: [], removed: [], changed: [] });
      expect({
        text: await tableText(),
        dnsmasq: await dnsmasqByBridge(),
        a: await addressesOf(bridge(ids.vpcA)),
        uplink: await addressesOf(UPLINK),
      }).toEqual(before);
      await new Promise((res) => setTimeout(res, 50));
      expect(announced.length).toBe(announcedBefore);
    },
    T,
  );

  test(
    'concurrent calls: one run at a time, calls during a run share one more run, and a change made during the first run is applied by the end',
    async () => {
      let active = 0;
      let maxActive = 0;
      let runs = 0;
      const apply = driver.applyVpcRuleset.bind(driver);
      driver.applyVpcRuleset = async (model: VpcNetworkModel, options) => {
        runs++;
        maxActive = Math.max(maxActive, ++active);
        try {
          return await apply(model, options);
        } finally {
          active--;
        }
      };
      try {
        const first = convergeNetwork(deps);
        // While the first run works: associate e2 with i2 and ask again, four times at once.
        await db.elasticIp.update({
          where: { publicIp: eips.e2 },
          data: {
            associationId: newId('elasticIpAssociation'),
            instanceId: i2.id,
            privateIp: i2.ip,
            vpcId: ids.vpcA,
          },
        });
        const later = [1, 2, 3, 4].map(() => convergeNetwork(deps));
        expect(new Set(later).size).toBe(1); // they share one run
        expect(later[0]).not.toBe(first);
        await first;
        const r = await later[0]!;
        expect(runs).toBe(2);
        expect(maxActive).toBe(1);
        expect((await eipState())!.dnat).toEqual({ [eips.e1]: i1.ip, [eips.e2]: i2.ip });
        // whichever run saw the association first reported it
        expect(r.elasticIps.changed.length + (await first).elasticIps.changed.length).toBe(1);
      } finally {
        driver.applyVpcRuleset = apply;
      }
    },
    T,
  );

  test(
    'launch path: a launch into a known VPC costs no host work; a new subnet is made before its first guest',
    async () => {
      let ensures = 0;
      const ensure = driver.ensureVpcNetwork.bind(driver);
      driver.ensureVpcNetwork = (spec) => {
        ensures++;
        return ensure(spec);
      };
      try {
        const i4 = await addInstance(ids.vpcA, ids.subnetA1, host(cidrs.a1, 11));
        const t0 = performance.now();
        const spec = await ensureInstanceNetwork(deps, i4);
        await ensureInstancePort(deps, i4, spec);
        await syncVpcReservations(deps, i4.vpcId, spec);
        timings.push(`port of a launch into a known VPC: ${Math.round(performance.now() - t0)} ms`);
        expect(ensures).toBe(0);
        expect(spec.bridge).toBe(bridge(ids.vpcA));
        expect(await masterOf(i4.tap)).toBe(bridge(ids.vpcA));
        expect(await readFile(dnsmasqPaths(stateDir(ids.vpcA)).hostsFile, 'utf8')).toContain(
          `${i4.mac},${i4.ip}`,
        );

        // A subnet created through the API (pending, network.apply not run yet): the launch
        // converges, so its router address and the ruleset exist before the guest.
        const subnetA3 = newId('subnet');
        await db.subnet.create({
          data: { id: subnetA3, vpcId: ids.vpcA, cidrBlock: cidrs.a3, state: 'pending' },
        });
        const i5 = await addInstance(ids.vpcA, subnetA3, host(cidrs.a3, 10));
        await ensureInstancePort(deps, i5, await ensureInstanceNetwork(deps, i5));
        expect(ensures).toBeGreaterThan(0);
        expect(await addressesOf(bridge(ids.vpcA))).toContain(`${host(cidrs.a3, 1)}/24`);
        expect((await db.subnet.findUnique({ where: { id: subnetA3 } }))!.state).toBe('available');
        expect(await tableText()).toContain(host(cidrs.a3, 1));

        // A bridge that vanished behind the worker's back: the attach is retried after a real ensure.
        await run('ip', ['link', 'del', 'dev', bridge(ids.vpcA)], { timeoutMs: 10_000 });
        await ensureInstancePort(deps, i4, spec);
        expect(await masterOf(i4.tap)).toBe(bridge(ids.vpcA));
        // the reconciler's converge puts the other detached taps back
        await convergeNetwork(deps);
        for (const t of [i1.tap, i5.tap]) expect(await masterOf(t)).toBe(bridge(ids.vpcA));
      } finally {
        driver.ensureVpcNetwork = ensure;
      }
    },
    T,
  );

  test(
    'bad rows are skipped and logged, the rest is applied',
    async () => {
      // An association to an address outside every subnet of its VPC, and a VPC overlapping A.
      const e4 = host(cidrs.pool, 13);
      await addEip(e4, { ...i3, ip: host(cidrs.a1, 99), id: newId('instance') });
      const bad = newId('vpc');
      await db.vpc.create({
        data: { id: bad, cidrBlock: cidrs.a1, bridgeKey: bad.slice(4, 13), state: 'pending' },
      });
      const r = await convergeNetwork(deps);
      expect(r.skipped).toEqual(
        expect.arrayContaining([
          expect.stringContaining(`association ${e4} -> ${host(cidrs.a1, 99)}`),
          expect.stringContaining(bad),
        ]),
      );
      const s = (await eipState())!;
      expect(s.held).toContain(e4); // held (never answered by the host), not mapped
      expect(s.dnat[e4]).toBeUndefined();
      expect(s.dnat[eips.e1]).toBe(i1.ip);
      expect(await linkExists(bridge(bad))).toBe(false);
      expect(logs.some((l) => l.includes(`skipped`) && l.includes(bad))).toBe(true);
      await db.vpc.delete({ where: { id: bad } });
      await db.elasticIp.delete({ where: { publicIp: e4 } });
    },
    T,
  );

  test(
    'terminate releases the auto-assigned Elastic IP, disassociates an allocated one, drops the reservation',
    async () => {
      await finishTermination(deps, i1.id, 'Client.UserInitiatedShutdown');
      expect(await db.elasticIp.findUnique({ where: { publicIp: eips.e1 } })).toBeNull();
      expect(await linkExists(i1.tap)).toBe(false);
      await finishTermination(deps, i2.id, 'Client.UserInitiatedShutdown');
      expect(await db.elasticIp.findUnique({ where: { publicIp: eips.e2 } })).toMatchObject({
        associationId: null,
        instanceId: null,
        privateIp: null,
        vpcId: null,
      });
      expect(await eipState()).toEqual({ held: [eips.e2, eips.e3], dnat: {} });
      expect(await driver.listElasticIpAddresses({ uplink: UPLINK, prefix: P })).toEqual(
        [eips.e2, eips.e3].sort(),
      );
      const hostsA = await readFile(dnsmasqPaths(stateDir(ids.vpcA)).hostsFile, 'utf8');
      expect(hostsA).not.toContain(i1.mac);
      expect(hostsA).not.toContain(i2.mac);
    },
    T,
  );

  test(
    'a VPC made while a converge runs (after it read the database) keeps its bridge and taps',
    async () => {
      const vpcId = newId('vpc');
      const subnetId = newId('subnet');
      const [cidr] = await freeBlocks(1, '10.233.0.0', 24, 256);
      let made: TestInstance | undefined;
      // What a launch into a new VPC does, timed between the converge's read of the rows and
      // its listing of the host's objects (the window in which it used to remove them).
      const racing: WorkerDeps = {
        ...deps,
        network: Object.assign(Object.create(driver) as LinuxNetworkDriver, {
          listOwnedVpcObjects: async (
            ...args: Parameters<LinuxNetworkDriver['listOwnedVpcObjects']>
          ) => {
            if (!made) {
              await db.vpc.create({
                data: {
                  id: vpcId,
                  cidrBlock: cidr!,
                  bridgeKey: vpcId.slice(4, 13),
                  state: 'pending',
                },
              });
              await db.subnet.create({
                data: { id: subnetId, vpcId, cidrBlock: cidr!, state: 'pending' },
              });
              made = await addInstance(vpcId, subnetId, host(cidr!, 10));
              const spec = await ensureInstanceNetwork(deps, { vpcId, subnetId });
              await ensureInstancePort(deps, { vpcId, tap: made.tap, mac: made.mac }, spec);
            }
            return driver.listOwnedVpcObjects(...args);
          },
        }),
      };
      const r = await convergeNetwork(racing);
      expect(made).toBeDefined();
      expect(r.removed.join(' ')).not.toContain(vpcId);
      expect(await linkExists(bridge(vpcId))).toBe(true);
      expect(await masterOf(made!.tap)).toBe(bridge(vpcId));
      expect(Object.keys(await dnsmasqByBridge())).toContain(bridge(vpcId));

      // Gone with its rows, as any VPC.
      await db.instance.update({ where: { id: made!.id }, data: { state: 'terminated' } });
      await db.subnet.delete({ where: { id: subnetId } });
      await db.vpc.delete({ where: { id: vpcId } });
      await convergeNetwork(deps);
      expect(await linkExists(bridge(vpcId))).toBe(false);
    },
    T,
  );

  test(
    'deleted VPC rows and a released address: bridge, dnsmasq, state dir, uplink address go',
    async () => {
      await db.instance.update({ where: { id: i3.id }, data: { state: 'terminated' } });
      await db.subnet.delete({ where: { id: ids.subnetB1 } });
      await db.vpc.deleteMany({ where: { id: { in: [ids.vpcB, ids.vpcC] } } });
      await db.elasticIp.delete({ where: { publicIp: eips.e3 } });
      const r = await convergeNetwork(deps);
      expect(r.removed.join(' ')).toContain(`deleted bridge ${bridge(ids.vpcB)}`);
      expect(r.elasticIps.removed).toEqual([eips.e3]);
      for (const id of [ids.vpcB, ids.vpcC]) {
        expect(await linkExists(bridge(id))).toBe(false);
        expect(await pathExists(stateDir(id))).toBe(false);
      }
      expect(Object.keys(await dnsmasqByBridge())).toEqual([bridge(ids.vpcA)]);
      expect((await eipState())!.held).toEqual([eips.e2]);
      expect(await driver.listElasticIpAddresses({ uplink: UPLINK, prefix: P })).toEqual([eips.e2]);
      expect(await tableText()).not.toContain(bridge(ids.vpcB));
    },
    T,
  );

  test(
    'removeAllNetworks (teardown) leaves nothing but the test uplink',
    async () => {
      await removeAllNetworks(deps);
      expect(
        await driver.listOwnedVpcObjects(P, {
          uplink: UPLINK,
          stateRoot: deps.settings.networksDir,
        }),
      ).toEqual({ bridges: [], dnsmasq: [], tables: [], elasticIpAddresses: [], stateDirs: [] });
      await run('ip', ['link', 'del', 'dev', UPLINK], { timeoutMs: 10_000 });
      // the taps of the (database-)live test instances went with their bridge
      expect(await leftovers(P)).toEqual({ links: [], dnsmasq: [], tables: [], netns: [] });
    },
    T,
  );
});
