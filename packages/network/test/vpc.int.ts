/**
 * VPCs, internet gateways and Elastic IPs on the real kernel. Two VPCs (bridges), "instances" are
 * network namespaces on veth pairs that get their addresses from the VPC's dnsmasq. The
 * "internet" is a namespace behind a veth pair whose host end is the uplink (198.19.x.0/24, RFC
 * 2544 benchmark space, on-link there so the Elastic IPs are really ARPed for): nothing leaves the
 * machine, eth0 and the host's own nft tables are never touched, ip_forward is restored.
 *
 * Not safe to run concurrently with nat.int.ts (both write net.ipv4.ip_forward): use --runInBand.
 */
import {
  elasticIpLabel,
  intToIp,
  ipToInt,
  parseCidr,
  vpcBridgeName,
  vpcTableName,
} from '@minicloud/domain';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { HostCommandError, run } from '@minicloud/host';
import { LinuxNetworkDriver, type VpcNetworkModel, type VpcNetworkSpec } from '@minicloud/network';
import {
  addNamespaceWithVeth,
  dhcp,
  freeBlocks,
  ip,
  leftovers,
  ping,
  readIpForward,
  T,
  testPrefix,
  useNetworkTestBed,
} from './int-helpers.js';

const P = testPrefix();
const TABLE = vpcTableName(P);
const UPLINK = `${P}u0`;
const NS_INET = `${P}-inet`;
const VPC_A = 'vpc-0a0a0a0a0a0a0a0a0';
const VPC_B = 'vpc-0b0b0b0b0b0b0b0b0';
const BR_A = vpcBridgeName(P, VPC_A);
const BR_B = vpcBridgeName(P, VPC_B);

interface Guest {
  name: string;
  ns: string;
  veth: string;
  mac: string;
  bridge: string;
  ip: string;
}

const driver = new LinuxNetworkDriver();
let vpcA: VpcNetworkSpec;
let vpcB: VpcNetworkSpec;
let a1: Guest; // VPC A, subnet 1
let a2: Guest; // VPC A, subnet 2
let b1: Guest; // VPC B
let uplinkIp: string;
let inetIp: string;
let eip1: string;
let eip2: string;
let uplinkMac: string;
const bed = useNetworkTestBed(P, {
  title: 'VPC integration timings',
  namespaces: () => [NS_INET, `${P}-a1`, `${P}-a2`, `${P}-b1`],
});
const { inNs, spawnInNs, timings } = bed;

function model(
  over: { igwA?: boolean; igwB?: boolean; eips?: VpcNetworkModel['elasticIps'] } = {},
): VpcNetworkModel {
  const subnets = (spec: VpcNetworkSpec, ids: string[]) =>
    spec.subnets.map((s, i) => ({ subnetId: ids[i]!, cidr: s.cidr, gatewayIp: s.gatewayIp }));
  return {
    table: TABLE,
    uplink: UPLINK,
    vpcs: [
      {
        vpcId: VPC_A,
        bridge: BR_A,
        cidr: vpcA.cidr,
        subnets: subnets(vpcA, ['subnet-0a0000000000000a1', 'subnet-0a0000000000000a2']),
        internetGateway: over.igwA ?? false,
      },
      {
        vpcId: VPC_B,
        bridge: BR_B,
        cidr: vpcB.cidr,
        subnets: subnets(vpcB, ['subnet-0b0000000000000b1']),
        internetGateway: over.igwB ?? false,
      },
    ],
    elasticIps: over.eips ?? [],
  };
}

/** Packet counters of the "internet" namespace's input chain, by source address. */
async function seen(): Promise<Record<string, number>> {
  const r = await inNs(NS_INET, ['nft', '-j', 'list', 'chain', 'ip', 'seen', 'input']);
  const out: Record<string, number> = {};
  for (const i of (
    JSON.parse(r.stdout) as {
      nftables: { rule?: { comment?: string; expr: Record<string, unknown>[] } }[];
    }
  ).nftables) {
    if (!i.rule?.comment) continue;
    const c = i.rule.expr.find((e) => 'counter' in e) as { counter: { packets: number } };
    out[i.rule.comment] = c.counter.packets;
  }
  return out;
}

/** busybox wget (its -T segfaults on Debian 12's busybox: the run timeout bounds it instead). */
async function wget(url: string, ns?: string): Promise<string | null> {
  const argv = ['busybox', 'wget', '-q', '-O', '-', url];
  try {
    const r = ns
      ? await inNs(ns, argv, [1], 3_000)
      : await run(argv[0]!, argv.slice(1), { timeoutMs: 3_000, okExitCodes: [1] });
    return r.exitCode === 0 ? r.stdout.trim() : null;
  } catch (e) {
    if (e instanceof HostCommandError && e.timedOut) return null;
    throw e;
  }
}

const UDP_ECHO = `
const d = require('dgram').createSocket('udp4');
d.on('message', (m, r) => d.send(Buffer.from(process.argv[1]), r.port, r.address));
d.bind(9999);
`;

/**
 * One UDP socket (one 5-tuple) sending to host:9999 every millisecond; exits at the first reply
 * whose payload is \`want\` and prints the CLOCK_MONOTONIC time (ns) it arrived at, and what
 * replies it had before. Writes readyFile once it is sending.
 */
const UDP_PROBE = `
const [host, want, readyFile, timeoutMs] = process.argv.slice(1);
const s = require('dgram').createSocket('udp4');
const before = {};
let sent = 0;
s.on('message', (m) => {
  const t = process.hrtime.bigint();
  const p = m.toString();
  if (p === want) {
    console.log(JSON.stringify({ at: t.toString(), sent, before }));
    process.exit(0);
  }
  before[p] = (before[p] || 0) + 1;
});
s.bind(0, () => {
  setInterval(() => { s.send('probe', 9999, host); sent++; }, 1);
  setTimeout(() => require('fs').writeFileSync(readyFile, 'ready'), 50);
  setTimeout(() => { console.log(JSON.stringify({ at: null, sent, before })); process.exit(2); }, Number(timeoutMs));
});
`;

interface ProbeResult {
  at: string | null;
  sent: number;
  before: Record<string, number>;
}

/** Start a probe in the "internet" namespace; resolves when it got `want` (or timed out). */
async function startProbe(target: string, want: string): Promise<{ done: Promise<ProbeResult> }> {
  const ready = join(bed.root, `probe-${Date.now()}-${Math.random().toString(16).slice(2)}`);
  const done = inNs(
    NS_INET,
    [process.execPath, '-e', UDP_PROBE, target, want, ready, '8000'],
    [2],
    20_000,
  ).then((r) => JSON.parse(r.stdout.trim().split('\n').pop()!) as ProbeResult);
  for (let i = 0; i < 400; i++) {
    try {
      await stat(ready);
      return { done }; // not the promise itself: an async function would wait for it
    } catch {
      await new Promise((r) => setTimeout(r, 10));
    }
  }
  throw new Error('probe did not start');
}

/**
 * A probe that runs until stopFile exists: one UDP socket sending to host:9999 every millisecond,
 * recording each reply that differs from the previous one or follows 20 ms of silence.
 */
const UDP_WATCH = `
const [host, readyFile, stopFile] = process.argv.slice(1);
const fs = require('fs');
const s = require('dgram').createSocket('udp4');
const events = [];
let last = null;
let lastAt = 0n;
s.on('message', (m) => {
  const t = process.hrtime.bigint();
  const p = m.toString();
  if (p !== last || t - lastAt > 20000000n) events.push([t.toString(), p]);
  last = p;
  lastAt = t;
});
s.bind(0, () => {
  setInterval(() => s.send('probe', 9999, host), 1);
  setTimeout(() => fs.writeFileSync(readyFile, 'ready'), 50);
  setInterval(() => {
    if (fs.existsSync(stopFile)) { console.log(JSON.stringify(events)); process.exit(0); }
  }, 50);
});
`;

async function startWatch(target: string): Promise<{
  stop: () => Promise<[bigint, string][]>;
}> {
  const tag = `${Date.now()}-${Math.random().toString(16).slice(2)}`;
  const ready = join(bed.root, `watch-${tag}.ready`);
  const stopFile = join(bed.root, `watch-${tag}.stop`);
  const done = inNs(
    NS_INET,
    [process.execPath, '-e', UDP_WATCH, target, ready, stopFile],
    [],
    120_000,
  );
  for (let i = 0; i < 400; i++) {
    try {
      await stat(ready);
      return {
        stop: async () => {
          await writeFile(stopFile, 'stop');
          const out = (await done).stdout.trim().split('\n').pop()!;
          return (JSON.parse(out) as [string, string][]).map(([t, p]) => [BigInt(t), p]);
        },
      };
    } catch {
      await new Promise((r) => setTimeout(r, 10));
    }
  }
  throw new Error('watch probe did not start');
}

function quantile(xs: number[], q: number): number {
  return [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) * q)]!;
}

beforeAll(async () => {
  const [ca, cb] = await freeBlocks(2, '10.224.0.0', 20, 4096);
  const [pub] = await freeBlocks(1, '198.19.0.0', 24, 256);
  const sub = (cidr: string, i: number) => {
    const c = parseCidr(cidr);
    const net = intToIp(c.networkInt + i * 256);
    return { cidr: `${net}/24`, gatewayIp: intToIp(ipToInt(net) + 1) };
  };
  vpcA = {
    bridge: BR_A,
    cidr: ca!,
    subnets: [sub(ca!, 0), sub(ca!, 1)],
    stateDir: `${bed.root}/vpcs/a`,
  };
  vpcB = { bridge: BR_B, cidr: cb!, subnets: [sub(cb!, 0)], stateDir: `${bed.root}/vpcs/b` };
  const host = (s: { gatewayIp: string }, n: number) => intToIp(ipToInt(s.gatewayIp) + n);
  a1 = {
    name: 'a1',
    ns: `${P}-a1`,
    veth: `${P}a1`,
    mac: '52:54:00:3a:00:01',
    bridge: BR_A,
    ip: host(vpcA.subnets[0]!, 9),
  };
  a2 = {
    name: 'a2',
    ns: `${P}-a2`,
    veth: `${P}a2`,
    mac: '52:54:00:3a:00:02',
    bridge: BR_A,
    ip: host(vpcA.subnets[1]!, 9),
  };
  b1 = {
    name: 'b1',
    ns: `${P}-b1`,
    veth: `${P}b1`,
    mac: '52:54:00:3b:00:01',
    bridge: BR_B,
    ip: host(vpcB.subnets[0]!, 9),
  };
  const p = parseCidr(pub!);
  uplinkIp = intToIp(p.networkInt + 1);
  inetIp = intToIp(p.networkInt + 254);
  eip1 = intToIp(p.networkInt + 10);
  eip2 = intToIp(p.networkInt + 11);

  // The "internet": the public /24 on-link (so it ARPs for Elastic IPs), no route to any VPC.
  await addNamespaceWithVeth(NS_INET, UPLINK, '52:54:00:3f:ff:01');
  await ip(['addr', 'add', `${uplinkIp}/24`, 'dev', UPLINK]);
  await ip(['link', 'set', 'dev', UPLINK, 'up']);
  await ip(['-n', NS_INET, 'addr', 'add', `${inetIp}/24`, 'dev', 'eth0']);
  uplinkMac = (
    JSON.parse((await ip(['-j', 'link', 'show', 'dev', UPLINK])).stdout) as { address: string }[]
  )[0]!.address;
  await run('ip', ['netns', 'exec', NS_INET, 'nft', '-f', '-'], {
    timeoutMs: 10_000,
    input: `table ip seen {
  chain input {
    type filter hook input priority 0; policy accept;
    ip saddr ${eip1} counter comment "eip1"
    ip saddr ${eip2} counter comment "eip2"
    ip saddr ${uplinkIp} counter comment "uplink"
    ip saddr 10.0.0.0/8 counter comment "private"
  }
}
`,
  });
}, T);

describe(`VPCs, internet gateways and Elastic IPs (prefix ${P})`, () => {
  test(
    'ensureVpcNetwork: one bridge per VPC with a router address per subnet and one dnsmasq; idempotent',
    async () => {
      const r = await driver.ensureVpcNetwork(vpcA);
      expect(r.changed).toEqual(
        expect.arrayContaining([
          `created bridge ${BR_A}`,
          `added ${vpcA.subnets[0]!.gatewayIp}/24 to ${BR_A}`,
          `added ${vpcA.subnets[1]!.gatewayIp}/24 to ${BR_A}`,
          'started dnsmasq',
        ]),
      );
      await driver.ensureVpcNetwork(vpcB);
      expect(await driver.ensureVpcNetwork(vpcA)).toEqual({ changed: [], notes: [] });
      expect(await readIpForward()).toBe('1');

      const br = (
        JSON.parse((await ip(['-j', 'addr', 'show', 'dev', BR_A])).stdout) as {
          addr_info: { family: string; local: string; prefixlen: number }[];
        }[]
      )[0]!;
      expect(
        br.addr_info
          .filter((a) => a.family === 'inet')
          .map((a) => a.local)
          .sort(),
      ).toEqual(vpcA.subnets.map((s) => s.gatewayIp).sort());
      const owned = await driver.listOwnedVpcObjects(P);
      expect(owned.bridges.map((b) => b.name).sort()).toEqual([BR_A, BR_B].sort());
      expect(owned.dnsmasq.map((d) => d.bridge).sort()).toEqual([BR_A, BR_B].sort());
      const cmdline = (
        await readFile(`/proc/${owned.dnsmasq.find((d) => d.bridge === BR_A)!.pid}/cmdline`, 'utf8')
      ).split('\0');
      expect(cmdline.filter((a) => a.startsWith('--dhcp-range='))).toHaveLength(2);
    },
    T,
  );

  test(
    "guests in two subnets of one VPC get their own subnet's address, mask, router and DNS from the VPC's one dnsmasq",
    async () => {
      await driver.setVpcReservations(vpcA, [
        { mac: a1.mac, ip: a1.ip, hostname: 'a1' },
        { mac: a2.mac, ip: a2.ip, hostname: 'a2' },
      ]);
      await driver.setVpcReservations(vpcB, [{ mac: b1.mac, ip: b1.ip, hostname: 'b1' }]);
      for (const g of [a1, a2, b1]) {
        await addNamespaceWithVeth(g.ns, g.veth, g.mac);
        await ip(['link', 'set', 'dev', g.veth, 'master', g.bridge, 'up']);
      }
      const la1 = await dhcp(a1.ns, bed.udhcpc);
      const la2 = await dhcp(a2.ns, bed.udhcpc);
      const lb1 = await dhcp(b1.ns, bed.udhcpc);
      const gwA1 = vpcA.subnets[0]!.gatewayIp;
      const gwA2 = vpcA.subnets[1]!.gatewayIp;
      expect(la1).toEqual({ ip: a1.ip, mask: '24', router: gwA1, dns: gwA1, hostname: 'a1' });
      expect(la2).toEqual({ ip: a2.ip, mask: '24', router: gwA2, dns: gwA2, hostname: 'a2' });
      expect(lb1?.ip).toBe(b1.ip);
    },
    T,
  );

  test(
    'without an internet gateway: same VPC (other subnet) reachable; other VPC, its router, the host uplink and the internet are not',
    async () => {
      const r = await driver.applyVpcRuleset(model());
      timings.push(`applyVpcRuleset (2 VPCs): render ${r.renderMs} ms, apply ${r.applyMs} ms`);
      expect(await ping(a2.ip, a1.ns)).toBe(true);
      expect(await ping(a1.ip, a2.ns)).toBe(true);
      expect(await ping(b1.ip, a1.ns)).toBe(false);
      expect(await ping(a1.ip, b1.ns)).toBe(false);
      expect(await ping(vpcA.subnets[0]!.gatewayIp, a1.ns)).toBe(true);
      expect(await ping(vpcA.subnets[1]!.gatewayIp, a1.ns)).toBe(true); // own VPC's other router
      expect(await ping(vpcB.subnets[0]!.gatewayIp, a1.ns)).toBe(false); // another VPC's router
      expect(await ping(uplinkIp, a1.ns)).toBe(false); // the host's public address
      expect(await ping(inetIp, a1.ns)).toBe(false);
      expect(await ping(a1.ip)).toBe(true); // the host itself reaches guests
    },
    T,
  );

  test(
    'with an internet gateway the guest reaches the internet masqueraded; a VPC without one still cannot',
    async () => {
      await driver.applyVpcRuleset(model({ igwA: true }));
      const before = await seen();
      expect(await ping(inetIp, a1.ns)).toBe(true);
      expect(await ping(inetIp, a2.ns)).toBe(true);
      expect(await ping(inetIp, b1.ns)).toBe(false);
      const after = await seen();
      expect(after.uplink!).toBeGreaterThan(before.uplink!);
      expect(after.private).toBe(0);
    },
    T,
  );

  test(
    'allocated Elastic IPs: held on the uplink (/32, scope host, labelled), answering nothing while unassociated',
    async () => {
      for (const e of [eip1, eip2]) {
        const r = await driver.allocateElasticIp({
          table: TABLE,
          uplink: UPLINK,
          prefix: P,
          publicIp: e,
          announce: false,
        });
        expect(r.addressAdded).toBe(true);
      }
      expect(
        (
          await driver.allocateElasticIp({
            table: TABLE,
            uplink: UPLINK,
            prefix: P,
            publicIp: eip1,
            announce: false,
          })
        ).addressAdded,
      ).toBe(false);
      const addrs = (
        JSON.parse((await ip(['-j', 'addr', 'show', 'dev', UPLINK])).stdout) as {
          addr_info: { local: string; prefixlen: number; scope: string; label?: string }[];
        }[]
      )[0]!.addr_info.filter((a) => a.local === eip1 || a.local === eip2);
      expect(addrs).toEqual([
        expect.objectContaining({
          local: eip1,
          prefixlen: 32,
          scope: 'host',
          label: elasticIpLabel(UPLINK, P)!,
        }),
        expect.objectContaining({
          local: eip2,
          prefixlen: 32,
          scope: 'host',
          label: elasticIpLabel(UPLINK, P)!,
        }),
      ]);
      expect(await driver.listElasticIpAddresses({ uplink: UPLINK, prefix: P })).toEqual(
        [eip1, eip2].sort(),
      );
      // The host would answer ping on any of its addresses: the input drop keeps it silent.
      expect(await ping(eip1, NS_INET)).toBe(false);
      expect(await ping(uplinkIp, NS_INET)).toBe(true);
    },
    T,
  );

  test(
    'associate: inbound to the Elastic IP reaches the instance, its outbound leaves with the Elastic IP; associate -> first packet measured',
    async () => {
      for (const g of [a1, a2, b1]) {
        const dir = join(bed.root, `www-${g.name}`);
        await mkdir(dir, { recursive: true });
        await writeFile(join(dir, 'index.html'), `${g.name}\n`);
        spawnInNs(g.ns, ['busybox', 'httpd', '-f', '-p', '8080', '-h', dir]);
        spawnInNs(g.ns, [process.execPath, '-e', UDP_ECHO, g.name]);
      }
      await new Promise((r) => setTimeout(r, 300));

      const probe = await startProbe(eip1, 'a1');
      const t0 = process.hrtime.bigint();
      const r = await driver.associateElasticIp({ table: TABLE, publicIp: eip1, privateIp: a1.ip });
      const t1 = process.hrtime.bigint();
      const p = await probe.done;
      expect(p.at).not.toBeNull();
      const firstMs = Number(BigInt(p.at!) - t0) / 1e6;
      timings.push(
        `associate -> first packet through: ${firstMs.toFixed(1)} ms (associateElasticIp call ${(Number(t1 - t0) / 1e6).toFixed(1)} ms: nft ${r.applyMs} ms, conntrack flush ${r.conntrackMs} ms)`,
      );
      expect(r.changed).toEqual([eip1]);
      expect(firstMs).toBeLessThan(1000);

      expect(await wget(`http://${eip1}:8080/`, NS_INET)).toBe('a1');
      const before = await seen();
      expect(await ping(inetIp, a1.ns)).toBe(true);
      const after = await seen();
      expect(after.eip1!).toBeGreaterThan(before.eip1!);
      expect(after.uplink).toBe(before.uplink); // not masqueraded any more
      expect(after.private).toBe(0);
      // a2 (same VPC, no Elastic IP) is still masqueraded
      expect(await ping(inetIp, a2.ns)).toBe(true);
      expect((await seen()).uplink!).toBeGreaterThan(after.uplink!);
    },
    T,
  );

  test(
    'hairpin and host: the host and a VPC with an internet gateway reach the Elastic IP; a VPC without one does not',
    async () => {
      expect(await wget(`http://${eip1}:8080/`)).toBe('a1'); // from the host itself
      expect(await wget(`http://${eip1}:8080/`, a2.ns)).toBe('a1'); // same VPC, through the public address
      // Not supported: an instance reaching its own Elastic IP. With br_netfilter a DNAT whose
      // target sits on the ingress bridge is delivered at layer 2 (bridged DNAT), and a bridge
      // never sends a frame back out of its ingress port (unless the port is in hairpin mode).
      expect(await wget(`http://${eip1}:8080/`, b1.ns)).toBeNull(); // VPC B has no internet gateway
      expect(await ping(eip2, NS_INET)).toBe(false); // still unassociated
    },
    T,
  );

  test(
    'the full ruleset rendered from the model agrees with the incremental state and changes nothing',
    async () => {
      const m = model({
        igwA: true,
        eips: [
          { publicIp: eip1, privateIp: a1.ip, vpcId: VPC_A },
          { publicIp: eip2, privateIp: null },
        ],
      });
      const before = await driver.readElasticIpState(TABLE);
      const r = await driver.applyVpcRuleset(m);
      expect(r.changedElasticIps).toEqual([]);
      expect(await driver.readElasticIpState(TABLE)).toEqual(before);
      expect(await wget(`http://${eip1}:8080/`, NS_INET)).toBe('a1');
    },
    T,
  );

  test(
    'move to another instance with a flow running: the same 5-tuple reaches the new instance at once (conntrack flushed)',
    async () => {
      const probe = await startProbe(eip1, 'a2'); // gets 'a1' replies until the move
      await new Promise((r) => setTimeout(r, 100));
      const t0 = process.hrtime.bigint();
      const r = await driver.associateElasticIp({ table: TABLE, publicIp: eip1, privateIp: a2.ip });
      const p = await probe.done;
      expect(p.at).not.toBeNull();
      expect(p.before.a1).toBeGreaterThan(10);
      const moveMs = Number(BigInt(p.at!) - t0) / 1e6;
      timings.push(
        `move (re-associate) -> first packet at the new instance: ${moveMs.toFixed(1)} ms (nft ${r.applyMs} ms, conntrack ${r.conntrackMs} ms, ${r.flushedConnections} flows flushed)`,
      );
      expect(r.flushedConnections).toBeGreaterThan(0);
      expect(moveMs).toBeLessThan(1000);
      expect(await wget(`http://${eip1}:8080/`, NS_INET)).toBe('a2');
      const before = await seen();
      expect(await ping(inetIp, a2.ns)).toBe(true);
      expect((await seen()).eip1!).toBeGreaterThan(before.eip1!);
    },
    T,
  );

  test(
    'latency over 10 cycles: associate -> first packet, and move -> first packet at the new instance',
    async () => {
      const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
      const watch = await startWatch(eip1);
      const marks: { kind: 'associate' | 'move'; want: string; t0: bigint; callMs: number }[] = [];
      for (let i = 0; i < 10; i++) {
        await driver.disassociateElasticIp({ table: TABLE, publicIp: eip1 });
        await sleep(100);
        let t0 = process.hrtime.bigint();
        await driver.associateElasticIp({ table: TABLE, publicIp: eip1, privateIp: a1.ip });
        marks.push({
          kind: 'associate',
          want: 'a1',
          t0,
          callMs: Number(process.hrtime.bigint() - t0) / 1e6,
        });
        await sleep(100);
        t0 = process.hrtime.bigint();
        await driver.associateElasticIp({ table: TABLE, publicIp: eip1, privateIp: a2.ip });
        marks.push({
          kind: 'move',
          want: 'a2',
          t0,
          callMs: Number(process.hrtime.bigint() - t0) / 1e6,
        });
        await sleep(100);
      }
      const events = await watch.stop();
      const lat = { associate: [] as number[], move: [] as number[] };
      const calls = { associate: [] as number[], move: [] as number[] };
      for (const m of marks) {
        const e = events.find(([t, p]) => t >= m.t0 && p === m.want);
        expect(e).toBeDefined();
        lat[m.kind].push(Number(e![0] - m.t0) / 1e6);
        calls[m.kind].push(m.callMs);
      }
      for (const k of ['associate', 'move'] as const) {
        timings.push(
          `${k} -> first packet (10 cycles): p50 ${quantile(lat[k], 0.5).toFixed(1)} ms, max ${Math.max(...lat[k]).toFixed(1)} ms; the call itself p50 ${quantile(calls[k], 0.5).toFixed(1)} ms`,
        );
        expect(quantile(lat[k], 0.5)).toBeLessThan(1000);
      }
    },
    T,
  );

  test(
    'disassociate: the Elastic IP reaches nothing; the instance is masqueraded again',
    async () => {
      const r = await driver.disassociateElasticIp({ table: TABLE, publicIp: eip1 });
      expect(r.changed).toEqual([eip1]);
      expect(await wget(`http://${eip1}:8080/`, NS_INET)).toBeNull();
      expect(await ping(eip1, NS_INET)).toBe(false);
      const before = await seen();
      expect(await ping(inetIp, a2.ns)).toBe(true);
      const after = await seen();
      expect(after.eip1).toBe(before.eip1);
      expect(after.uplink!).toBeGreaterThan(before.uplink!);
      // and back, to an instance in the other VPC once it has an internet gateway
      await driver.applyVpcRuleset(
        model({
          igwA: true,
          igwB: true,
          eips: [
            { publicIp: eip1, privateIp: b1.ip, vpcId: VPC_B },
            { publicIp: eip2, privateIp: null },
          ],
        }),
      );
      expect(await wget(`http://${eip1}:8080/`, NS_INET)).toBe('b1');
      expect(await wget(`http://${eip1}:8080/`, a1.ns)).toBe('b1'); // hairpin across VPCs, via the public address
      expect(await ping(b1.ip, a1.ns)).toBe(false); // but not privately
    },
    T,
  );

  test(
    'announce: a gratuitous ARP updates the neighbour cache of the "internet"',
    async () => {
      await ip([
        '-n',
        NS_INET,
        'neigh',
        'replace',
        eip2,
        'lladdr',
        '02:00:00:00:00:99',
        'dev',
        'eth0',
        'nud',
        'stale',
      ]);
      const r = await driver.announceElasticIp({ uplink: UPLINK, publicIp: eip2 });
      timings.push(`announceElasticIp with ${r.tool}: ${r.ms} ms`);
      expect(r.announced).toBe(true);
      const n = (await ip(['-n', NS_INET, 'neigh', 'show', eip2])).stdout;
      expect(n).toContain(uplinkMac);
    },
    T,
  );

  test(
    'release and removal leave no bridge, dnsmasq, table, uplink address or state directory',
    async () => {
      for (const e of [eip1, eip2]) {
        const r = await driver.releaseElasticIp({
          table: TABLE,
          uplink: UPLINK,
          prefix: P,
          publicIp: e,
        });
        expect(r.addressRemoved).toBe(true);
      }
      expect(await driver.listElasticIpAddresses({ uplink: UPLINK, prefix: P })).toEqual([]);
      expect(await ping(uplinkIp, NS_INET)).toBe(true); // the uplink's own address untouched
      expect(await driver.removeVpcRuleset(TABLE)).toBe(true);
      expect(await driver.removeVpcRuleset(TABLE)).toBe(false);
      for (const v of [vpcA, vpcB]) {
        const r = await driver.removeVpcNetwork(v);
        expect(r.removed).toEqual(
          expect.arrayContaining([`deleted bridge ${v.bridge}`, `removed ${v.stateDir}`]),
        );
        expect(await driver.removeVpcNetwork(v)).toEqual({ removed: [] });
      }
      bed.killSpawned();
      for (const ns of [a1.ns, a2.ns, b1.ns, NS_INET]) await ip(['netns', 'del', ns]);
      expect(
        await driver.listOwnedVpcObjects(P, { uplink: UPLINK, stateRoot: `${bed.root}/vpcs` }),
      ).toEqual({
        bridges: [],
        dnsmasq: [],
        tables: [],
        elasticIpAddresses: [],
        stateDirs: [],
      });
      expect(await leftovers(P)).toEqual({ links: [], dnsmasq: [], tables: [], netns: [] });
    },
    T,
  );
});
