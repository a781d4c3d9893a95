/**
 * Outbound NAT and forwarding policy on the real kernel. The "internet" is a network namespace
 * behind a veth pair (198.18.x.0/30, RFC 2544 benchmark space): nothing leaves this machine and
 * eth0 and the host's own nft tables are never touched. ip_forward is restored afterwards.
 */
import { parseCidr } from '@minicloud/domain';
import { rm } from 'node:fs/promises';
import { run } from '@minicloud/host';
import { LinuxNetworkDriver, type BridgeNetworkSpec } from '@minicloud/network';
import {
  addNamespaceWithVeth,
  dhcp,
  freeBlocks,
  ip,
  leftovers,
  ping,
  readIpForward,
  stateRoot,
  sweep,
  T,
  testPrefix,
  writeIpForward,
  writeUdhcpcScript,
} from './int-helpers.js';

const P = testPrefix();
const NS_INET = `${P}-inet`;
const NS_G0 = `${P}-g0`; // guest on the NAT network
const NS_G1 = `${P}-g1`; // guest on the host-only network
const UPLINK = `${P}u0`;
const TABLE = `${P}_nat`;
const MAC_G0 = '52:54:00:1a:00:01';
const MAC_G1 = '52:54:00:1a:00:02';

const driver = new LinuxNetworkDriver();
let root: string;
let script: string;
let natNet: BridgeNetworkSpec;
let hostNet: BridgeNetworkSpec;
let uplinkIp: string; // host end of the "internet" link
let inetIp: string; // the "internet" host
let g0Ip: string;
let g1Ip: string;
let ipForwardBefore: string | null = null;

function inNs(ns: string, cmd: string, args: string[], okExitCodes: number[] = []) {
  return run('ip', ['netns', 'exec', ns, cmd, ...args], { timeoutMs: 10_000, okExitCodes });
}

interface NftRule {
  rule?: { chain: string; expr: Record<string, unknown>[] };
}

/** Packet counters of rules in one chain of a table, keyed by a rough description. */
async function counters(
  table: string,
  chain: string,
  ns?: string,
): Promise<{ text: string; packets: number }[]> {
  const argv = ['-j', 'list', 'chain', 'ip', table, chain];
  const r = ns ? await inNs(ns, 'nft', argv) : await run('nft', argv, { timeoutMs: 10_000 });
  const items = (JSON.parse(r.stdout) as { nftables: NftRule[] }).nftables;
  return items
    .filter((i) => i.rule)
    .map((i) => {
      const expr = i.rule!.expr;
      const counter = expr.find((e) => 'counter' in e) as
        { counter: { packets: number } } | undefined;
      return { text: JSON.stringify(expr), packets: counter?.counter.packets ?? -1 };
    });
}

beforeAll(async () => {
  ipForwardBefore = await readIpForward();
  root = await stateRoot();
  script = await writeUdhcpcScript(root);
  const [c0, c1] = await freeBlocks(2, '10.210.0.0', 24, 256);
  const [inet] = await freeBlocks(1, '198.18.0.0', 30, 4);
  const i = parseCidr(inet!);
  uplinkIp = i.firstHost;
  inetIp = i.lastHost;
  natNet = {
    bridge: `${P}br0`,
    cidr: c0!,
    gatewayIp: parseCidr(c0!).firstHost,
    stateDir: `${root}/nat`,
    uplink: UPLINK,
    natTable: TABLE,
  };
  hostNet = {
    bridge: `${P}br1`,
    cidr: c1!,
    gatewayIp: parseCidr(c1!).firstHost,
    stateDir: `${root}/hostonly`,
    uplink: null,
    natTable: TABLE, // one table shared by both networks
  };
  g0Ip = parseCidr(c0!).firstHost.replace(/\.1$/, '.20');
  g1Ip = parseCidr(c1!).firstHost.replace(/\.1$/, '.20');

  // The "internet": only a /30 and no route back to the guests' networks.
  await addNamespaceWithVeth(NS_INET, UPLINK, '52:54:00:1a:ff:01');
  await ip(['addr', 'add', `${uplinkIp}/30`, 'dev', UPLINK]);
  await ip(['link', 'set', 'dev', UPLINK, 'up']);
  await ip(['-n', NS_INET, 'addr', 'add', `${inetIp}/30`, 'dev', 'eth0']);
  // Count what arrives in the "internet" namespace, by source (its own nft ruleset, not the host's).
  await run('ip', ['netns', 'exec', NS_INET, 'nft', '-f', '-'], {
    timeoutMs: 10_000,
    input: `table ip seen {
  chain input {
    type filter hook input priority 0; policy accept;
    ip saddr ${uplinkIp} icmp type echo-request counter
    ip saddr ${natNet.cidr} counter
  }
}
`,
  });
}, T);

afterAll(async () => {
  const errors = await sweep(P, [NS_INET, NS_G0, NS_G1]);
  if (ipForwardBefore !== null) await writeIpForward(ipForwardBefore);
  if (root) await rm(root, { recursive: true, force: true });
  if (errors.length) console.warn(`cleanup problems: ${errors.join('; ')}`);
}, T);

describe(`outbound NAT through an uplink (prefix ${P})`, () => {
  test(
    'ensureNetwork with an uplink turns ip_forward on and says so; a host-only network shares the table',
    async () => {
      await writeIpForward('0');
      const r = await driver.ensureNetwork(natNet);
      expect(r.notes).toEqual([
        `enabled net.ipv4.ip_forward (was 0) for network ${natNet.bridge} with uplink ${UPLINK}`,
      ]);
      expect(await readIpForward()).toBe('1');
      expect((await driver.ensureNetwork(natNet)).notes).toEqual([]);
      expect((await driver.ensureNetwork(hostNet)).notes).toEqual([]);
      expect(await driver.listNatNetworks(TABLE)).toEqual([natNet.bridge, hostNet.bridge].sort());

      const rules = await counters(TABLE, `postrouting_${natNet.bridge}`);
      expect(rules).toHaveLength(1);
      expect(rules[0]!.text).toContain('"masquerade"');
      expect(rules[0]!.text).toContain(`"${UPLINK}"`);
      expect(await counters(TABLE, `postrouting_${hostNet.bridge}`)).toEqual([]);
    },
    T,
  );

  test(
    'an uplink that does not exist yet is reported',
    async () => {
      const r = await driver.ensureNetwork({ ...hostNet, uplink: `${P}nope` });
      expect(r.notes).toEqual([
        `uplink ${P}nope of ${hostNet.bridge} does not exist (yet): no outbound traffic until it does`,
      ]);
      await driver.ensureNetwork(hostNet); // back to host-only
    },
    T,
  );

  test(
    'a guest reaches the "internet" with its source masqueraded to the uplink address',
    async () => {
      await addNamespaceWithVeth(NS_G0, `${P}v0`, MAC_G0);
      await ip(['link', 'set', 'dev', `${P}v0`, 'master', natNet.bridge, 'up']);
      await driver.setReservations(natNet, [{ mac: MAC_G0, ip: g0Ip }]);
      expect((await dhcp(NS_G0, script))?.ip).toBe(g0Ip);

      const masqBefore = (await counters(TABLE, `postrouting_${natNet.bridge}`))[0]!.packets;
      // The "internet" has no route to the guest network: a reply can only come back if the
      // request's source was rewritten to the uplink address.
      expect(await ping(inetIp, NS_G0)).toBe(true);
      expect((await counters(TABLE, `postrouting_${natNet.bridge}`))[0]!.packets).toBeGreaterThan(
        masqBefore,
      );
      const seen = await counters('seen', 'input', NS_INET);
      expect(seen[0]!.packets).toBeGreaterThan(0); // echo requests from the uplink address
      expect(seen[1]!.packets).toBe(0); // nothing with a guest source address
    },
    T,
  );

  test(
    'the "internet" cannot open connections to guests, even with a route to them',
    async () => {
      await ip(['-n', NS_INET, 'route', 'add', natNet.cidr, 'via', uplinkIp]);
      try {
        const dropsBefore = (await counters(TABLE, `forward_${natNet.bridge}`)).at(-1)!.packets;
        expect(await ping(g0Ip, NS_INET)).toBe(false);
        expect((await counters(TABLE, `forward_${natNet.bridge}`)).at(-1)!.packets).toBeGreaterThan(
          dropsBefore,
        );
      } finally {
        await ip(['-n', NS_INET, 'route', 'del', natNet.cidr, 'via', uplinkIp]);
      }
    },
    T,
  );

  test(
    'a host-only guest reaches the host but neither the "internet" nor the other network',
    async () => {
      await addNamespaceWithVeth(NS_G1, `${P}v1`, MAC_G1);
      await ip(['link', 'set', 'dev', `${P}v1`, 'master', hostNet.bridge, 'up']);
      await driver.setReservations(hostNet, [{ mac: MAC_G1, ip: g1Ip }]);
      expect((await dhcp(NS_G1, script))?.ip).toBe(g1Ip);
      expect(await ping(hostNet.gatewayIp, NS_G1)).toBe(true);
      expect(await ping(g1Ip)).toBe(true); // from the host
      // Dropped by our forward chain (not merely unanswered): its "iifname BR counter drop" counts.
      const outDrops = async () =>
        (await counters(TABLE, `forward_${hostNet.bridge}`)).at(-2)!.packets;
      const before = await outDrops();
      expect(await ping(inetIp, NS_G1)).toBe(false);
      expect(await outDrops()).toBeGreaterThan(before);
      expect(await ping(g0Ip, NS_G1)).toBe(false);
      expect(await outDrops()).toBeGreaterThan(before + 1);
      expect(await ping(g1Ip, NS_G0)).toBe(false);
    },
    T,
  );

  test(
    'applyNatRuleset replaces the whole table atomically; NAT keeps working',
    async () => {
      await driver.applyNatRuleset(TABLE, [
        { bridge: natNet.bridge, cidr: natNet.cidr, uplink: UPLINK },
        { bridge: hostNet.bridge, cidr: hostNet.cidr, uplink: null },
      ]);
      expect(await driver.listNatNetworks(TABLE)).toEqual([natNet.bridge, hostNet.bridge].sort());
      expect(await ping(inetIp, NS_G0)).toBe(true);
    },
    T,
  );

  test(
    'removing one network keeps the shared table for the other; removing both deletes it',
    async () => {
      const r1 = await driver.removeNetwork(natNet);
      expect(r1.removed).not.toContain(`deleted nft table ${TABLE}`);
      expect(await driver.listNatNetworks(TABLE)).toEqual([hostNet.bridge]);
      const r2 = await driver.removeNetwork(hostNet);
      expect(r2.removed).toContain(`deleted nft table ${TABLE}`);
      expect(await driver.listNatNetworks(TABLE)).toBeNull();
      for (const ns of [NS_G0, NS_G1, NS_INET]) await ip(['netns', 'del', ns]);
      expect(await leftovers(P)).toEqual({ links: [], dnsmasq: [], tables: [], netns: [] });
    },
    T,
  );
});
