/**
 * Taps and DHCP against the real kernel: a one-subnet VPC bridge, taps, its dnsmasq serving
 * DHCP to a "guest" network namespace, stale-lease handling, crash recovery, concurrency and
 * latency. No uplink and no nft here (see vpc.int.ts). ip_forward is set to 1 (a VPC turns it on)
 * and restored afterwards. Needs root, iproute2, dnsmasq-base, busybox-static (dnsmasq-utils
 * optional).
 */
import {
  allocateAddress,
  bridgeMacFor,
  intToIp,
  macForInstance,
  parseCidr,
  tapName,
  vpcBridgeName,
} from '@minicloud/domain';
import { readFile, rm, stat } from 'node:fs/promises';
import {
  dnsmasqPaths,
  LinuxNetworkDriver,
  type DhcpReservation,
  type VpcNetworkSpec,
} from '@minicloud/network';
import {
  addNamespaceWithVeth,
  dhcp,
  freeBlocks,
  ip,
  leftovers,
  ping,
  setGuestMac,
  T,
  testPrefix,
  useNetworkTestBed,
  writeIpForward,
} from './int-helpers.js';

const P = testPrefix();
const NS = `${P}-guest`;
const VETH = `${P}v0`;
const MAC_A = '52:54:00:0a:00:0a';
const MAC_B = '52:54:00:0b:00:0b';
const MAC_X = '52:54:00:0c:00:0c'; // never reserved

let script: string;
let spec: VpcNetworkSpec & { gatewayIp: string };
let ipA: string;
const driver = new LinuxNetworkDriver();
const bed = useNetworkTestBed(P, { title: 'taps and DHCP timings', namespaces: () => [NS] });

async function linkJson(name: string) {
  const r = await ip(['-j', '-d', 'addr', 'show', 'dev', name]);
  return (JSON.parse(r.stdout) as Record<string, unknown>[])[0] as {
    ifname: string;
    flags: string[];
    master?: string;
    address: string;
    linkinfo?: { info_kind?: string; info_data?: { type?: string; persist?: boolean } };
    addr_info: { family: string; local: string; prefixlen: number }[];
  };
}

async function dnsmasqPid(): Promise<number> {
  const list = await driver.listOwnedDnsmasq(P);
  expect(list).toHaveLength(1);
  return list[0]!.pid;
}

beforeAll(async () => {
  script = bed.udhcpc;
  // On from the start, so the first ensure's report is about the bridge alone.
  await writeIpForward('1');
  const [cidr] = await freeBlocks(1, '10.200.0.0', 24, 256);
  const net = parseCidr(cidr!);
  spec = {
    bridge: vpcBridgeName(P, 'vpc-0d0d0d0d0d0d0d0d0'),
    cidr: net.cidr,
    gatewayIp: net.firstHost,
    subnets: [{ cidr: net.cidr, gatewayIp: net.firstHost }],
    stateDir: `${bed.root}/net0`,
    logDhcp: true,
  };
  ipA = allocateAddress(net, new Set(), {
    reserved: [spec.gatewayIp],
    preferred: intToIp(net.networkInt + 10),
  })!;
}, T);

describe(`taps and DHCP on a VPC bridge, on the real kernel (prefix ${P})`, () => {
  test(
    'ensureVpcNetwork creates bridge, router address and dnsmasq; a second call changes nothing',
    async () => {
      const first = await driver.ensureVpcNetwork(spec);
      expect(first.changed).toEqual([
        `created bridge ${spec.bridge}`,
        `added ${spec.gatewayIp}/24 to ${spec.bridge}`,
        'started dnsmasq',
      ]);
      expect(first.notes).toEqual([]);
      const second = await driver.ensureVpcNetwork(spec);
      expect(second).toEqual({ changed: [], notes: [] });

      const br = await linkJson(spec.bridge);
      expect(br.linkinfo?.info_kind).toBe('bridge');
      expect(br.flags).toContain('UP');
      expect(br.address).toBe(bridgeMacFor(spec.bridge));
      expect(
        br.addr_info.filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`),
      ).toEqual([`${spec.gatewayIp}/24`]);
      expect(br.addr_info.filter((a) => a.family === 'inet6')).toEqual([]); // IPv6 off on the bridge
      expect(
        (await readFile(`/proc/sys/net/ipv6/conf/${spec.bridge}/disable_ipv6`, 'utf8')).trim(),
      ).toBe('1');
      expect(
        (await readFile(`/proc/sys/net/ipv4/conf/${spec.bridge}/rp_filter`, 'utf8')).trim(),
      ).toBe('1');

      const pid = await dnsmasqPid();
      const cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
      expect(cmdline).toContain(`--interface=${spec.bridge}`);
    },
    T,
  );

  test(
    'a guest with a reserved MAC gets exactly its address, router, DNS and hostname; the host reaches it',
    async () => {
      await addNamespaceWithVeth(NS, VETH, MAC_A);
      await ip(['link', 'set', 'dev', VETH, 'master', spec.bridge, 'up']);
      const r = await driver.setVpcReservations(spec, [
        { mac: MAC_A, ip: ipA, hostname: 'guesta' },
      ]);
      expect(r).toEqual({ changed: true, releasedLeases: [], dnsmasq: 'reloaded' });

      const lease = await dhcp(NS, script);
      if (!lease)
        console.log((await readFile(dnsmasqPaths(spec.stateDir).logFile, 'utf8')).slice(-3000));
      expect(lease).toEqual({
        ip: ipA,
        mask: '24',
        router: spec.gatewayIp,
        dns: spec.gatewayIp,
        hostname: 'guesta',
      });
      expect(await ping(ipA)).toBe(true);
      expect((await driver.readLeases(spec)).map((l) => [l.mac, l.ip])).toEqual([[MAC_A, ipA]]);
    },
    T,
  );

  test(
    'a MAC without a reservation gets no address',
    async () => {
      await setGuestMac(NS, MAC_X);
      expect(await dhcp(NS, script, 2)).toBeNull();
    },
    T,
  );

  test(
    'the address reserved for a new MAC is handed out although the old MAC still holds a lease on it',
    async () => {
      const r = await driver.setVpcReservations(spec, [
        { mac: MAC_B, ip: ipA, hostname: 'guestb' },
      ]);
      expect(r.changed).toBe(true);
      expect(r.releasedLeases).toEqual([{ mac: MAC_A, ip: ipA }]);
      await setGuestMac(NS, MAC_B);
      const lease = await dhcp(NS, script);
      expect(lease?.ip).toBe(ipA);
      expect(lease?.hostname).toBe('guestb');
      expect((await driver.readLeases(spec)).map((l) => [l.mac, l.ip])).toEqual([[MAC_B, ipA]]);
    },
    T,
  );

  test(
    "the same with the 'restart' strategy (no dhcp_release)",
    async () => {
      const restarting = new LinuxNetworkDriver({ staleLeases: 'restart' });
      const before = await dnsmasqPid();
      const r = await restarting.setVpcReservations(spec, [
        { mac: MAC_A, ip: ipA, hostname: 'guesta' },
      ]);
      expect(r).toEqual({
        changed: true,
        releasedLeases: [{ mac: MAC_B, ip: ipA }],
        dnsmasq: 'restarted',
      });
      expect(await dnsmasqPid()).not.toBe(before);
      await setGuestMac(NS, MAC_A);
      expect((await dhcp(NS, script))?.ip).toBe(ipA);
    },
    T,
  );

  test(
    'ensurePort: a persistent tap on the bridge, idempotent, repaired, removed',
    async () => {
      const tap = tapName(P, 'i-0123456789abcdef0');
      const mac = macForInstance('i-0123456789abcdef0');
      expect(await driver.ensurePort({ bridge: spec.bridge, tap, mac })).toEqual({
        created: true,
        changed: true,
      });
      let t = await linkJson(tap);
      expect(t.linkinfo?.info_kind).toBe('tun');
      expect(t.linkinfo?.info_data).toMatchObject({ type: 'tap', persist: true });
      expect(t.master).toBe(spec.bridge);
      expect(t.flags).toContain('UP');
      expect(t.address).toBe(`fe${mac.slice(2)}`);
      expect(await driver.ensurePort({ bridge: spec.bridge, tap, mac })).toEqual({
        created: false,
        changed: false,
      });

      await ip(['link', 'set', 'dev', tap, 'nomaster']);
      await ip(['link', 'set', 'dev', tap, 'down']);
      expect(await driver.ensurePort({ bridge: spec.bridge, tap, mac })).toEqual({
        created: false,
        changed: true,
      });
      t = await linkJson(tap);
      expect(t.master).toBe(spec.bridge);
      expect(t.flags).toContain('UP');

      const owned = await driver.listOwnedLinks(P);
      expect(owned.find((l) => l.name === tap)).toMatchObject({
        kind: 'tun',
        tunType: 'tap',
        master: spec.bridge,
        up: true,
      });
      expect(owned.find((l) => l.name === spec.bridge)).toMatchObject({
        kind: 'bridge',
        master: null,
      });
      expect(owned.find((l) => l.name === VETH)).toMatchObject({
        kind: 'veth',
        master: spec.bridge,
      });

      expect(await driver.removePort(tap)).toBe(true);
      expect(await driver.removePort(tap)).toBe(false);
      expect((await driver.listOwnedLinks(P)).map((l) => l.name)).not.toContain(tap);
    },
    T,
  );

  test(
    'a veth with a tap name is not mistaken for a tap',
    async () => {
      const name = `${P}tveth`;
      await ip(['link', 'add', name, 'type', 'veth', 'peer', 'name', `${P}tpeer`]);
      try {
        await expect(driver.ensurePort({ bridge: spec.bridge, tap: name })).rejects.toMatchObject({
          code: 'NetworkLinkConflict',
        });
        await expect(driver.removePort(name)).rejects.toMatchObject({
          code: 'NetworkLinkConflict',
        });
      } finally {
        await ip(['link', 'del', name], [1]);
      }
    },
    T,
  );

  test(
    'crash recovery: a killed dnsmasq is restarted; a deleted bridge is re-created and DHCP works again',
    async () => {
      const pid = await dnsmasqPid();
      process.kill(pid, 'SIGKILL');
      const r1 = await driver.ensureVpcNetwork(spec);
      expect(r1.changed).toEqual(['started dnsmasq']);
      expect(await dnsmasqPid()).not.toBe(pid);

      await ip(['link', 'del', 'dev', spec.bridge]); // dnsmasq now holds a socket on a dead interface
      const r2 = await driver.ensureVpcNetwork(spec);
      expect(r2.changed).toEqual([
        `created bridge ${spec.bridge}`,
        `added ${spec.gatewayIp}/24 to ${spec.bridge}`,
        'restarted dnsmasq (bridge or address re-created)',
      ]);
      await ip(['link', 'set', 'dev', VETH, 'master', spec.bridge, 'up']);
      await setGuestMac(NS, MAC_A);
      expect((await dhcp(NS, script))?.ip).toBe(ipA);

      // A lost pid file: the running dnsmasq is found by its command line and replaced.
      const before = await dnsmasqPid();
      await rm(dnsmasqPaths(spec.stateDir).pidFile);
      expect((await driver.ensureVpcNetwork(spec)).changed).toEqual(['started dnsmasq']);
      expect(await dnsmasqPid()).not.toBe(before);
    },
    T,
  );

  test(
    'a changed spec (DNS off, domain) restarts dnsmasq with the new arguments',
    async () => {
      const before = await dnsmasqPid();
      const r = await driver.ensureVpcNetwork({ ...spec, dns: false, domain: 'mc.internal' });
      expect(r.changed).toEqual(['restarted dnsmasq (configuration changed)']);
      const pid = await dnsmasqPid();
      expect(pid).not.toBe(before);
      expect((await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0')).toContain('--port=0');
      expect((await driver.ensureVpcNetwork(spec)).changed).toEqual([
        'restarted dnsmasq (configuration changed)',
      ]);
    },
    T,
  );

  test(
    'concurrent launches: ports and reservations from 20 parallel calls all land; the hosts file has the last full set',
    async () => {
      const net = parseCidr(spec.cidr);
      const ids = Array.from(
        { length: 20 },
        (_, i) => `i-${(0xc0000 + i).toString(16).padStart(17, '0')}`,
      );
      const reservations: DhcpReservation[] = [{ mac: MAC_A, ip: ipA, hostname: 'guesta' }];
      const taken = new Set([ipA]);
      for (const id of ids) {
        const ipx = allocateAddress(net, taken, { reserved: [spec.gatewayIp] })!;
        taken.add(ipx);
        reservations.push({ mac: macForInstance(id), ip: ipx, hostname: `h${id.slice(-4)}` });
      }
      const logBefore = await readFile(dnsmasqPaths(spec.stateDir).logFile, 'utf8');
      const committed: DhcpReservation[] = [reservations[0]!]; // "the database"
      await Promise.all(
        ids.map(async (id, i) => {
          await driver.ensurePort({
            bridge: spec.bridge,
            tap: tapName(P, id),
            mac: macForInstance(id),
          });
          // each launch reads the network's full set when it calls (its own row committed)
          committed.push(reservations[i + 1]!);
          await driver.setVpcReservations(spec, [...committed]);
        }),
      );
      const hosts = await readFile(dnsmasqPaths(spec.stateDir).hostsFile, 'utf8');
      expect(hosts.trim().split('\n')).toHaveLength(21);
      const links = await driver.listOwnedLinks(P);
      for (const id of ids) {
        expect(links.find((l) => l.name === tapName(P, id))).toMatchObject({
          master: spec.bridge,
          up: true,
        });
      }
      const logAfter = await readFile(dnsmasqPaths(spec.stateDir).logFile, 'utf8');
      const reloads = (logAfter.slice(logBefore.length).match(/read .*dhcp-hosts/g) ?? []).length;
      expect(reloads).toBeGreaterThanOrEqual(1);
      expect(reloads).toBeLessThan(20); // coalesced
      for (const id of ids) await driver.removePort(tapName(P, id));
    },
    T,
  );

  test(
    'latency: ensurePort + setReservations of one launch (50 runs)',
    async () => {
      const net = parseCidr(spec.cidr);
      const reservations: DhcpReservation[] = [{ mac: MAC_A, ip: ipA, hostname: 'guesta' }];
      const taken = new Set([ipA]);
      const port: number[] = [];
      const resv: number[] = [];
      const total: number[] = [];
      const taps: string[] = [];
      for (let i = 0; i < 50; i++) {
        const id = `i-${(0xd0000 + i).toString(16).padStart(17, '0')}`;
        const ipx = allocateAddress(net, taken, { reserved: [spec.gatewayIp] })!;
        taken.add(ipx);
        reservations.push({ mac: macForInstance(id), ip: ipx });
        const tap = tapName(P, id);
        taps.push(tap);
        const t0 = performance.now();
        await driver.ensurePort({ bridge: spec.bridge, tap, mac: macForInstance(id) });
        const t1 = performance.now();
        await driver.setVpcReservations(spec, [...reservations]);
        const t2 = performance.now();
        port.push(t1 - t0);
        resv.push(t2 - t1);
        total.push(t2 - t0);
      }
      const q = (xs: number[], p: number) =>
        [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) * p)]!;
      const fmt = (xs: number[]) =>
        `p50 ${q(xs, 0.5).toFixed(1)} ms, p90 ${q(xs, 0.9).toFixed(1)} ms, max ${Math.max(...xs).toFixed(1)} ms`;
      console.log(
        `network latency over 50 launches:\n  ensurePort      ${fmt(port)}\n  setReservations ${fmt(resv)}\n  both            ${fmt(total)}`,
      );
      // Every tap is on the bridge and every reservation in dnsmasq's hosts file.
      const links = await driver.listOwnedLinks(P);
      for (const tap of taps) expect(links.find((l) => l.name === tap)?.master).toBe(spec.bridge);
      const hosts = await readFile(dnsmasqPaths(spec.stateDir).hostsFile, 'utf8');
      for (const r of reservations) expect(hosts).toContain(r.ip);
      // The figure itself is a benchmark (it moves with the machine's load); this bound only
      // catches a launch that fell back to whole-network work (seconds, not milliseconds).
      expect(q(total, 0.5)).toBeLessThan(1000);
      for (const tap of taps) await driver.removePort(tap);
    },
    T,
  );

  test(
    'removeVpcNetwork leaves no bridge, tap, dnsmasq or state directory; a second call is a no-op',
    async () => {
      const tap = tapName(P, 'i-0fedcba9876543210');
      await driver.ensurePort({ bridge: spec.bridge, tap }); // still attached: removal takes it too
      const r = await driver.removeVpcNetwork(spec);
      expect(r.removed).toEqual(
        expect.arrayContaining([`deleted tap ${tap}`, `deleted bridge ${spec.bridge}`]),
      );
      expect(await driver.removeVpcNetwork(spec)).toEqual({ removed: [] });
      await expect(stat(spec.stateDir)).rejects.toThrow();
      await ip(['netns', 'del', NS]); // takes the guest veth pair with it
      expect(await leftovers(P)).toEqual({ links: [], dnsmasq: [], tables: [], netns: [] });
    },
    T,
  );
});
