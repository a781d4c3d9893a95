/**
 * Security groups on the real kernel: one VPC bridge (with its dnsmasq), "instances" are network
 * namespaces on veth pairs named like taps (<prefix>t...), so the anti-spoofing table treats them
 * as guest ports. Traffic stays on the test's own bridge; every name carries the test prefix;
 * the host's other tables and interfaces are never touched; ip_forward is restored.
 *
 *   srv   10.x.y.10  WEB     tcp 22 and icmp echo from 10.x.y.16/28, tcp 8080 from group APP
 *   cin   10.x.y.20  CLIENT  inside the /28
 *   cout  10.x.y.40  CLIENT  outside it
 *   mem   10.x.y.50  APP     member of the referenced group
 *   non   10.x.y.60  CLIENT  not a member (until it is added)
 *   rogue 10.x.y.21  -       a port the model does not know (inside the /28)
 *
 * Not safe to run concurrently with nat.int.ts / vpc.int.ts (all write net.ipv4.ip_forward).
 */
import { intToIp, ipToInt, parseCidr, vpcBridgeName } from '@minicloud/domain';
import { stat, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { run } from '@minicloud/host';
import {
  LinuxNetworkDriver,
  planSecurityGroups,
  securityGroupStateFromPlan,
  sgBridgeTableName,
  sgTableName,
  type SecurityGroupModel,
  type SecurityGroupNetworkModel,
  type SecurityGroupState,
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
} from './int-helpers.js';

const P = testPrefix();
const VPC = 'vpc-05e05e05e05e05e05';
const BR = vpcBridgeName(P, VPC);
const WEB = 'sg-05e00000000000001';
const CLIENT = 'sg-05e00000000000002';
const APP = 'sg-05e00000000000003';

interface Guest {
  name: string;
  ns: string;
  tap: string;
  mac: string;
  ip: string;
}

const driver = new LinuxNetworkDriver();
let vpc: VpcNetworkSpec;
let router: string;
let cidr28: string;
let srv: Guest;
let cin: Guest;
let cout: Guest;
let mem: Guest;
let non: Guest;
let rogue: Guest;
const groupsOf = new Map<string, string[]>();
const servers: Server[] = [];
const bed = useNetworkTestBed(P, {
  title: 'security group integration timings',
  namespaces: () => [srv, cin, cout, mem, non, rogue].filter(Boolean).map((g) => g.ns),
  cleanup: async () => {
    for (const s of servers) s.close();
    await new LinuxNetworkDriver().removeSecurityGroupTables(P);
  },
});
const { inNs, spawnInNs, timings } = bed;
let hostServicePort: number;
let hostOtherPort: number;

function guest(name: string, n: number): Guest {
  return {
    name,
    ns: `${P}-${name}`,
    tap: `${P}t${name}`,
    mac: `52:54:00:5e:00:${n.toString(16).padStart(2, '0')}`,
    ip: intToIp(ipToInt(router) - 1 + n),
  };
}

function rule(n: number, r: Omit<SecurityGroupModel['ingress'][number], 'ruleId'>) {
  return { ruleId: `sgr-05e${n.toString(16).padStart(14, '0')}`, ...r };
}

const ALL_OUT = rule(0x100, { ipProtocol: '-1', cidr: '0.0.0.0/0' });
/** The "unrelated" rule added while a session is open. */
const EXTRA = rule(0x200, { ipProtocol: 'udp', fromPort: 5353, toPort: 5353, cidr: '10.0.0.0/8' });

function groups(
  over: Partial<Record<string, Partial<SecurityGroupModel>>> = {},
): SecurityGroupModel[] {
  const base: SecurityGroupModel[] = [
    {
      groupId: WEB,
      vpcId: VPC,
      ingress: [
        rule(1, { ipProtocol: 'tcp', fromPort: 22, toPort: 22, cidr: cidr28 }),
        rule(2, { ipProtocol: 'icmp', fromPort: 8, toPort: -1, cidr: cidr28 }),
        rule(3, { ipProtocol: 'tcp', fromPort: 8080, toPort: 8080, referencedGroupId: APP }),
      ],
      egress: [rule(4, { ipProtocol: '-1', cidr: '0.0.0.0/0' })],
    },
    { groupId: CLIENT, vpcId: VPC, ingress: [], egress: [ALL_OUT] },
    {
      groupId: APP,
      vpcId: VPC,
      ingress: [],
      egress: [rule(5, { ipProtocol: '-1', cidr: '0.0.0.0/0' })],
    },
  ];
  return base.map((g) => ({ ...g, ...over[g.groupId] }));
}

function model(over: Partial<SecurityGroupNetworkModel> = {}): SecurityGroupNetworkModel {
  return {
    prefix: P,
    bridges: [{ bridge: BR, vpcId: VPC, routerIps: [router] }],
    groups: groups(),
    ports: [srv, cin, cout, mem, non].map((g) => ({
      tap: g.tap,
      bridge: BR,
      mac: g.mac,
      ip: g.ip,
      groupIds: groupsOf.get(g.name)!,
    })),
    hostServices: [{ protocol: 'tcp', port: hostServicePort }],
    ...over,
  };
}

/** Listens on every port given; greets each connection with "<name>:<port>" and echoes lines. */
const TCP_SERVER = `
const net = require('net');
const [name, ...ports] = process.argv.slice(1);
for (const port of ports) {
  net.createServer((s) => { s.write(name + ':' + port + '\\n'); s.pipe(s); s.on('error', () => {}); })
    .listen(Number(port), '0.0.0.0');
}
`;

/** Connects, prints "OK <greeting>" / "TIMEOUT" / "ERR <code>". */
const TCP_CLIENT = `
const [host, port, ms] = process.argv.slice(1);
const s = require('net').connect({ host, port: Number(port) });
setTimeout(() => { console.log('TIMEOUT'); process.exit(3); }, Number(ms));
s.once('data', (d) => { console.log('OK ' + d.toString().trim()); process.exit(0); });
s.on('error', (e) => { console.log('ERR ' + e.code); process.exit(4); });
`;

/**
 * One long TCP session: connects, writes readyFile after the greeting, waits for triggerFile,
 * then sends "ping" and prints OK when the echo comes back (TIMEOUT after 3 s).
 */
const TCP_SESSION = `
const fs = require('fs');
const [host, port, ready, trigger] = process.argv.slice(1);
const s = require('net').connect({ host, port: Number(port) });
s.on('error', (e) => { console.log('ERR ' + e.code); process.exit(4); });
const noStart = setTimeout(() => { console.log('NOSTART'); process.exit(5); }, 5000);
s.once('data', () => {
  clearTimeout(noStart);
  fs.writeFileSync(ready, 'ready');
  const iv = setInterval(() => {
    if (!fs.existsSync(trigger)) return;
    clearInterval(iv);
    s.on('data', (d) => { if (d.toString().includes('ping')) { console.log('OK'); process.exit(0); } });
    s.write('ping\\n');
    setTimeout(() => { console.log('TIMEOUT'); process.exit(3); }, 3000);
  }, 20);
});
`;

/** One DNS query (A srv.<domain>) to host:53; prints OK on any answer, else TIMEOUT. */
const DNS_PROBE = `
const [host, name] = process.argv.slice(1);
const labels = name.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)]));
const q = Buffer.concat([Buffer.from('123401000001000000000000', 'hex'), ...labels, Buffer.from('0000010001', 'hex')]);
const d = require('dgram').createSocket('udp4');
d.on('message', () => { console.log('OK'); process.exit(0); });
d.send(q, 53, host);
setTimeout(() => { console.log('TIMEOUT'); process.exit(3); }, 1500);
`;

async function tcp(from: Guest, host: string, port: number, ms = 1500): Promise<string> {
  const r = await inNs(
    from.ns,
    [process.execPath, '-e', TCP_CLIENT, host, String(port), String(ms)],
    [3, 4],
  );
  return r.stdout.trim();
}

async function dns(from: Guest): Promise<boolean> {
  const r = await inNs(
    from.ns,
    [process.execPath, '-e', DNS_PROBE, router, 'srv.sgtest.internal'],
    [3],
  );
  return r.stdout.trim() === 'OK';
}

/** A TCP session from `from`, open once this resolves; ping() sends one line and awaits the echo. */
async function openSession(
  from: Guest,
  host: string,
  port: number,
  name: string,
): Promise<{ ping: () => Promise<string> }> {
  const ready = join(bed.root, `session-${name}-ready`);
  const trigger = join(bed.root, `session-${name}-go`);
  const done = inNs(
    from.ns,
    [process.execPath, '-e', TCP_SESSION, host, String(port), ready, trigger],
    [3, 4, 5],
    20_000,
  ).then((r) => r.stdout.trim());
  await Promise.race([waitForFile(ready), done.then((out) => Promise.reject(new Error(out)))]);
  return {
    ping: async () => {
      await writeFile(trigger, 'go');
      return done;
    },
  };
}

async function waitForFile(path: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    try {
      await stat(path);
      return;
    } catch {
      if (Date.now() > end) throw new Error(`${path} did not appear`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

function norm(s: SecurityGroupState | null): string {
  return JSON.stringify(s, (_k, v: unknown) =>
    v instanceof Map ? [...v.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1)) : v,
  );
}

async function ownTables(): Promise<string[]> {
  const r = await run('nft', ['list', 'tables'], { timeoutMs: 10_000 });
  return r.stdout.split('\n').filter((l) => l.includes(` ${P}_`));
}

beforeAll(async () => {
  const [block] = await freeBlocks(1, '10.232.0.0', 24, 256);
  const net = parseCidr(block!);
  router = intToIp(net.networkInt + 1);
  cidr28 = `${intToIp(net.networkInt + 16)}/28`;
  vpc = {
    bridge: BR,
    cidr: net.cidr,
    subnets: [{ cidr: net.cidr, gatewayIp: router }],
    stateDir: join(bed.root, 'vpc'),
    domain: 'sgtest.internal',
  };
  srv = guest('srv', 10);
  cin = guest('cin', 20);
  rogue = guest('x', 21);
  cout = guest('cout', 40);
  mem = guest('mem', 50);
  non = guest('non', 60);
  groupsOf.set('srv', [WEB]);
  groupsOf.set('cin', [CLIENT]);
  groupsOf.set('cout', [CLIENT]);
  groupsOf.set('mem', [APP]);
  groupsOf.set('non', [CLIENT]);
  hostServicePort = 20_000 + Math.floor(Math.random() * 20_000);
  hostOtherPort = hostServicePort + 1;
}, T);

describe(`security groups on nftables (prefix ${P})`, () => {
  test(
    'whole model applied as two tables; guests get their DHCP leases through the anti-spoofing and input rules',
    async () => {
      await driver.ensureVpcNetwork(vpc);
      await driver.setVpcReservations(
        vpc,
        [srv, cin, cout, mem, non].map((g) => ({ mac: g.mac, ip: g.ip, hostname: g.name })),
      );
      for (const g of [srv, cin, cout, mem, non, rogue]) {
        await addNamespaceWithVeth(g.ns, g.tap, g.mac);
        await ip(['link', 'set', 'dev', g.tap, 'master', BR, 'up']);
      }
      const r = await driver.applySecurityGroups(model());
      timings.push(
        `applySecurityGroups (3 groups, 5 ports): render ${r.renderMs} ms, apply ${r.applyMs} ms`,
      );
      expect(r.counts).toEqual({ bridges: 1, groups: 3, rules: 6, ports: 5, combos: 3 });
      expect(await driver.listOwnedSecurityGroupTables(P)).toEqual({
        inet: [sgTableName(P)],
        bridge: [sgBridgeTableName(P)],
      });
      for (const g of [srv, cin, cout, mem, non]) {
        const lease = await dhcp(g.ns, bed.udhcpc);
        expect(lease?.ip).toBe(g.ip);
      }
      // the rogue port gets no lease (dnsmasq has none for it, and its frames are dropped anyway)
      await ip(['-n', rogue.ns, 'addr', 'add', `${rogue.ip}/24`, 'dev', 'eth0']);
      spawnInNs(srv.ns, [process.execPath, '-e', TCP_SERVER, 'srv', '22', '8080', '9999']);
      for (const port of [hostServicePort, hostOtherPort]) {
        const s = createServer((c) => c.end(`host:${port}\n`));
        await new Promise<void>((resolve) => s.listen(port, router, resolve));
        servers.push(s);
      }
      // the servers are up (from inside srv, over lo, which no table looks at)
      for (let i = 0; ; i++) {
        const r2 = await inNs(
          srv.ns,
          [process.execPath, '-e', TCP_CLIENT, '127.0.0.1', '9999', '1000'],
          [3, 4],
        );
        if (r2.stdout.startsWith('OK')) break;
        if (i > 50) throw new Error(`server in ${srv.ns} did not start: ${r2.stdout}`);
        await new Promise((res) => setTimeout(res, 100));
      }
    },
    T,
  );

  test(
    'guest to host: DNS on the router and the configured service answer; another host port and ping to the router do not',
    async () => {
      expect(await dns(cin)).toBe(true);
      expect(await tcp(cin, router, hostServicePort)).toBe(`OK host:${hostServicePort}`);
      expect(await tcp(cin, router, hostOtherPort)).toBe('TIMEOUT');
      expect(await ping(router, cin.ns)).toBe(false);
      // the host itself still reaches the guest (host-originated traffic is not filtered)
      expect(await ping(cin.ip)).toBe(true);
    },
    T,
  );

  test(
    'TCP and ICMP allowed from a CIDR: a client inside it gets through, one outside does not',
    async () => {
      expect(await tcp(cin, srv.ip, 22)).toBe('OK srv:22');
      expect(await ping(srv.ip, cin.ns)).toBe(true);
      expect(await tcp(cout, srv.ip, 22)).toBe('TIMEOUT');
      expect(await ping(srv.ip, cout.ns)).toBe(false);
    },
    T,
  );

  test(
    'a port that is not allowed times out (the server is listening)',
    async () => {
      expect(await tcp(cin, srv.ip, 9999)).toBe('TIMEOUT');
      expect(await tcp(cin, srv.ip, 8080)).toBe('TIMEOUT');
    },
    T,
  );

  test(
    'a rule referencing a group admits a member and refuses a non-member, which is admitted at once when it joins',
    async () => {
      expect(await tcp(mem, srv.ip, 8080)).toBe('OK srv:8080');
      expect(await tcp(non, srv.ip, 8080)).toBe('TIMEOUT');
      const t0 = performance.now();
      const r = await driver.updateMemberships(P, [{ tap: non.tap, groupIds: [CLIENT, APP] }]);
      groupsOf.set('non', [CLIENT, APP]);
      const result = await tcp(non, srv.ip, 8080);
      const firstMs = performance.now() - t0;
      expect(result).toBe('OK srv:8080');
      expect(r.summary.elementsAdded).toBe(3); // two dispatch map entries, one set member
      timings.push(
        `join a group -> first connection through: ${firstMs.toFixed(1)} ms (nft ${r.applyMs} ms, ${r.bytes} bytes)`,
      );
      expect(firstMs).toBeLessThan(1000);
      // still refused on what the other group does not allow
      expect(await tcp(non, srv.ip, 22)).toBe('TIMEOUT');
    },
    T,
  );

  test(
    'an established TCP connection survives an unrelated rule change applied as a whole-table replace',
    async () => {
      const session = await openSession(cin, srv.ip, 22, 'unrelated');
      const r = await driver.applySecurityGroups(
        model({ groups: groups({ [APP]: { ingress: [EXTRA] } }) }),
      );
      timings.push(`whole-table apply with a session open: apply ${r.applyMs} ms`);
      expect(await session.ping()).toBe('OK');
      expect(await tcp(cin, srv.ip, 22)).toBe('OK srv:22'); // new connections too
    },
    T,
  );

  test(
    'conntrack is what carries it: with the allowing rule gone the session lives on (as in EC2), new connections are refused',
    async () => {
      const session = await openSession(cin, srv.ip, 22, 'revoked');
      const web = groups()[0]!;
      const noSsh = { ingress: web.ingress.filter((r) => r.fromPort !== 22) };
      await driver.applySecurityGroups(
        model({ groups: groups({ [WEB]: noSsh, [APP]: { ingress: [EXTRA] } }) }),
      );
      expect(await tcp(cin, srv.ip, 22)).toBe('TIMEOUT');
      expect(await session.ping()).toBe('OK');
      await driver.applySecurityGroups(model({ groups: groups({ [APP]: { ingress: [EXTRA] } }) }));
      expect(await tcp(cin, srv.ip, 22)).toBe('OK srv:22');
    },
    T,
  );

  test(
    'revoking an egress rule stops new outbound connections; authorizing it again restores them',
    async () => {
      const revoke = await driver.replaceGroupRules(P, [
        { groupId: CLIENT, vpcId: VPC, ingress: [], egress: [] },
      ]);
      expect(revoke.summary.groupsRulesReplaced).toEqual([CLIENT]);
      expect(await tcp(cin, srv.ip, 22)).toBe('TIMEOUT');
      expect(await ping(srv.ip, cin.ns)).toBe(false);
      // only tcp 22 to the subnet: ssh works, ICMP still does not
      await driver.replaceGroupRules(P, [
        {
          groupId: CLIENT,
          vpcId: VPC,
          ingress: [],
          egress: [rule(0x300, { ipProtocol: 'tcp', fromPort: 22, toPort: 22, cidr: vpc.cidr })],
        },
      ]);
      expect(await tcp(cin, srv.ip, 22)).toBe('OK srv:22');
      expect(await ping(srv.ip, cin.ns)).toBe(false);
      await driver.replaceGroupRules(P, [
        { groupId: CLIENT, vpcId: VPC, ingress: [], egress: [ALL_OUT] },
      ]);
      expect(await ping(srv.ip, cin.ns)).toBe(true);
    },
    T,
  );

  test(
    'a guest that changes its IP or MAC gets nothing through, nor does a port the model does not know',
    async () => {
      // cout takes an address inside the allowed /28: still nothing, not even DNS
      expect(await dns(cout)).toBe(true);
      const spoofIp = intToIp(ipToInt(router) - 1 + 22);
      await ip(['-n', cout.ns, 'addr', 'flush', 'dev', 'eth0']);
      await ip(['-n', cout.ns, 'addr', 'add', `${spoofIp}/24`, 'dev', 'eth0']);
      expect(await tcp(cout, srv.ip, 22)).toBe('TIMEOUT');
      expect(await dns(cout)).toBe(false);
      await ip(['-n', cout.ns, 'addr', 'flush', 'dev', 'eth0']);
      await ip(['-n', cout.ns, 'addr', 'add', `${cout.ip}/24`, 'dev', 'eth0']);
      expect(await dns(cout)).toBe(true);

      // cin takes another MAC (same address): nothing
      expect(await tcp(cin, srv.ip, 22)).toBe('OK srv:22');
      await setGuestMac(cin.ns, '52:54:00:5e:00:ee');
      await ip(['-n', cin.ns, 'addr', 'add', `${cin.ip}/24`, 'dev', 'eth0']);
      expect(await tcp(cin, srv.ip, 22)).toBe('TIMEOUT');
      expect(await dns(cin)).toBe(false);
      await setGuestMac(cin.ns, cin.mac);
      await ip(['-n', cin.ns, 'addr', 'add', `${cin.ip}/24`, 'dev', 'eth0']);
      expect(await tcp(cin, srv.ip, 22)).toBe('OK srv:22');

      // an interface named like a tap but not in the model: dropped, though inside the /28
      expect(await tcp(rogue, srv.ip, 22)).toBe('TIMEOUT');
      expect(await dns(rogue)).toBe(false);
      expect(await ping(srv.ip, rogue.ns)).toBe(false);
    },
    T,
  );

  test(
    'a fresh driver reads back the state that was applied and updates from it',
    async () => {
      const fresh = new LinuxNetworkDriver();
      const back = await fresh.readSecurityGroupState(P);
      const m = model({ groups: groups({ [APP]: { ingress: [EXTRA] } }) });
      expect(norm(back)).toBe(norm(securityGroupStateFromPlan(planSecurityGroups(m))));
      // terminate non, then launch it again (element updates from the read-back state)
      const gone = await fresh.updatePorts(P, { remove: [non.tap] });
      expect(gone.readBack).toBe(true);
      expect(await tcp(non, srv.ip, 8080)).toBe('TIMEOUT');
      const port = { tap: non.tap, bridge: BR, mac: non.mac, ip: non.ip, groupIds: [APP] };
      const back2 = await fresh.updatePorts(P, { upsert: [port] });
      expect(back2.readBack).toBe(false);
      expect(await tcp(non, srv.ip, 8080)).toBe('OK srv:8080');
    },
    T,
  );

  test(
    'removal leaves nothing in nft list tables, and no bridge, namespace or dnsmasq',
    async () => {
      expect((await ownTables()).sort()).toEqual(
        [`table bridge ${sgBridgeTableName(P)}`, `table inet ${sgTableName(P)}`].sort(),
      );
      expect((await driver.removeSecurityGroupTables(P)).sort()).toEqual([
        `bridge ${sgBridgeTableName(P)}`,
        `inet ${sgTableName(P)}`,
      ]);
      expect(await driver.removeSecurityGroupTables(P)).toEqual([]);
      expect(await ownTables()).toEqual([]);
      await expect(
        driver.updateMemberships(P, [{ tap: cin.tap, groupIds: [APP] }]),
      ).rejects.toThrow(/do not exist/);
      bed.killSpawned();
      for (const g of [srv, cin, cout, mem, non, rogue]) await ip(['netns', 'del', g.ns]);
      await driver.removeVpcNetwork(vpc);
      expect(await driver.listOwnedSecurityGroupTables(P)).toEqual({ inet: [], bridge: [] });
      expect(await leftovers(P)).toEqual({ links: [], dnsmasq: [], tables: [], netns: [] });
    },
    T,
  );
});
