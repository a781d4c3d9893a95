import { randomInt } from 'node:crypto';
import { run } from '@minicloud/host';
import {
  createFakeInternet,
  defaultImage,
  expectFailsInGuest,
  finishE2e,
  freeSecondOctets,
  hostConnect,
  identityUserData,
  inGuest,
  IDENTITY_PORT,
  INSTANCE_ID_FILE,
  sequentialSteps,
  sleep,
  sshExecTimed,
  startMinicloud,
  tcpRead,
  terminateGuests,
  testPrefix,
  until,
  untilFailsInGuest,
  untilIdentityAnswers,
  untilInGuest,
  waitUntilBooted,
  type FakeInternet,
  type Guest as TestGuest,
  type MinicloudUnderTest,
  type NetnsAgent,
} from '@minicloud/testkit';

/**
 * Security groups, end to end: real TCG guests, real traffic, clients in a network namespace.
 *
 * The "internet" is a network namespace joined to the host by a veth pair (testkit's
 * fake-internet.ts) with TWO client addresses (client1 = its primary address, client2 a second
 * one on the same /24), a server answering "who is calling" and a spy that records every TCP SYN
 * and ICMP echo request arriving there. One VPC 10.v.0.0/16 with one subnet and an internet
 * gateway; three guests, each running (user-data) an identity service on port 7070 that answers
 * its instance id:
 *
 *   t  the target, group T (ingress rules under test), with an Elastic IP
 *   x  a guest in group X
 *   o  another guest, group O (not in X until the test puts it there)
 *
 * The host itself is the control plane: its own SSH and connections to guests are not filtered,
 * so every "is it reachable" check comes from the namespace (through the Elastic IP) or from
 * another guest (over SSH from the host, the guest's command is what is filtered).
 */

const WHOAMI_PORT = 7777;
/** Ports on the namespace's server for the spoofing step (one per attempt kind, see there). */
const SPOOF_PORTS = {
  control: 7781,
  unusedIp: 7782,
  otherGuestIp: 7783,
  otherMac: 7784,
  afterMac: 7785,
} as const;
// tcp_syn_retries=1: a blocked connection attempt in a guest gives up after ~3 s (not ~2 min),
// so the probe loops below do not pile up processes.
const USER_DATA = identityUserData(['sysctl -q -w net.ipv4.tcp_syn_retries=1']);

interface Guest extends TestGuest {
  name: 't' | 'x' | 'o';
  mac: string;
}

interface Group {
  groupId: string;
  groupName: string;
}

const now = () => performance.timeOrigin + performance.now();

/** The table's listing, or '' when it does not exist. */
async function nftTable(family: 'inet' | 'bridge' | 'ip', table: string): Promise<string> {
  const r = await run('nft', ['list', 'table', family, table], { okExitCodes: [1] });
  return r.exitCode === 0 ? r.stdout : '';
}

/** Elements of a set (sorted), or null when the set does not exist. */
async function nftSetElements(family: string, table: string, set: string) {
  const r = await run('nft', ['-j', 'list', 'set', family, table, set], { okExitCodes: [1] });
  if (r.exitCode !== 0) return null;
  const items = (JSON.parse(r.stdout) as { nftables: { set?: { elem?: unknown[] } }[] }).nftables;
  return items
    .flatMap((i) => i.set?.elem ?? [])
    .map((e) =>
      typeof e === 'string' ? e : String((e as { elem?: { val?: unknown } }).elem?.val ?? ''),
    )
    .sort();
}

/** Whether a listing mentions this exact IPv4 address (not one it is a prefix of). */
function mentionsIp(text: string, ip: string): boolean {
  return new RegExp(`(^|[^0-9.])${ip.replaceAll('.', '\\.')}($|[^0-9])`, 'm').test(text);
}

describe('security groups: stateful per-instance firewalls on real guests', () => {
  let prefix: string;
  let inet: FakeInternet | undefined;
  let agent: NetnsAgent;
  let mc: MinicloudUnderTest | undefined;
  let key: string;
  let oct: number;
  let vpc: any;
  let subnet: any;
  let igwId: string;
  let defaultGroup: Group;
  const sg: Record<'T' | 'X' | 'O', Group> = {} as any;
  const g: Record<'t' | 'x' | 'o', Guest> = {} as any;
  let eip: { allocationId: string; publicIp: string };
  /** client1: inside the CIDR allowed for SSH; client2: outside it. */
  let client1: string;
  let client2: string;
  const timings: Record<string, number> = {};
  const { step, failed } = sequentialSteps();

  const sgTable = () => `${prefix}_sg`;
  const sgBridgeTable = () => `${prefix}_sgb`;
  const groupSet = (groupId: string) => `sg_${groupId.slice(3)}`;

  /** A guest command printing the source address the namespace's server saw for it. */
  const askWhoAmI = (port: number = WHOAMI_PORT) => tcpRead(inet!.nsIp, port);

  async function apiError(method: string, path: string, body?: unknown) {
    const r = await mc!.client.request(method, path, body);
    return { status: r.status, code: r.body?.error?.code ?? null };
  }

  /** A connection attempt from the namespace must time out (dropped, not refused). */
  async function expectTimesOut(what: string, host: string, port: number, from: string) {
    const r = await agent.connect(host, port, 2500, from);
    expect({ what, connected: r.connected, error: r.error }).toEqual({
      what,
      connected: false,
      error: expect.stringMatching(/timeout/),
    });
  }

  /**
   * Measure, from inside `from`, how long after `action` starts a TCP connection to
   * target:7070 first gets the target's answer. The guest starts a new attempt every 50 ms, each
   * in its own subshell (a dropped SYN's retransmission timer never delays the next attempt); the
   * first answered one prints "ok"; the time is when that line arrives on the host (the guest's
   * clock plays no part). Fails if an attempt got through before the action.
   */
  async function measureFromGuest(
    from: Guest,
    target: Guest,
    action: () => Promise<unknown>,
    deadlineSeconds = 15,
  ) {
    const flag = `/tmp/mc-probe-${randomInt(1e9)}`;
    const script = [
      `rm -f ${flag}; n=0; end=$((SECONDS + ${deadlineSeconds})); echo started`,
      `while [ ! -e ${flag} ] && [ $SECONDS -lt $end ]; do`,
      `  n=$((n + 1))`,
      `  ( exec 3<>/dev/tcp/${target.ip}/${IDENTITY_PORT} && read -r -t 3 line <&3; ` +
        `[ -n "$line" ] && [ ! -e ${flag} ] && touch ${flag} && echo "ok $n $line" ) 2>/dev/null &`,
      `  sleep 0.05`,
      `done`,
      `kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -f ${flag}; echo "attempts $n"`,
    ].join('\n');
    let started: () => void = () => {};
    const startedP = new Promise<void>((r) => (started = r));
    const exec = sshExecTimed(from.ip, key, script, {
      timeoutMs: (deadlineSeconds + 30) * 1000,
      onLine: (l) => l.text === 'started' && started(),
    });
    exec.catch(() => undefined); // awaited below
    await Promise.race([
      startedP,
      exec.then((r) => {
        throw new Error(
          `the probe loop in ${from.name} ended before starting: ${JSON.stringify(r)}`,
        );
      }),
    ]);
    // Let the loop run (and fail) for a while first.
    await sleep(400);
    const t0 = now();
    await action();
    const apiMs = now() - t0;
    const r = await exec;
    const ok = r.lines.find((l) => l.text.startsWith('ok '));
    const attempts = r.lines.find((l) => l.text.startsWith('attempts '))?.text ?? '?';
    if (!ok) {
      throw new Error(
        `${from.name} -> ${target.name}:${IDENTITY_PORT}: no connection in ${deadlineSeconds} s after the change (${attempts}; ${r.stderr})`,
      );
    }
    if (ok.at < t0) {
      throw new Error(
        `${from.name} -> ${target.name}:${IDENTITY_PORT} got through BEFORE the change (${ok.text})`,
      );
    }
    return {
      ms: Math.round(ok.at - t0),
      apiMs: Math.round(apiMs),
      answer: ok.text.split(' ')[2],
      attempts: attempts.replace('attempts ', ''),
    };
  }

  afterAll(async () => {
    if (mc && failed()) {
      for (const [family, table] of [
        ['inet', `${mc.prefix}_sg`],
        ['bridge', `${mc.prefix}_sgb`],
        ['ip', `${mc.prefix}_vpc`],
      ] as const) {
        console.log(`nft list table ${family} ${table}:\n${await nftTable(family, table)}`);
      }
    }
    const { leftovers, problems } = await finishE2e({ mc, inet, failed: failed(), timings });
    expect({ leftovers, problems }).toEqual({ leftovers: [], problems: [] });
  });

  step('a VPC with a gateway, three groups, three guests and an Elastic IP', async () => {
    prefix = testPrefix('sg');
    // The "internet" exists before minicloud starts: the uplink is part of its configuration.
    inet = await createFakeInternet(prefix, { extraClientIps: 1 });
    [client1, client2] = inet.clientIps as [string, string];
    agent = await inet.startAgent();
    await agent.listen(WHOAMI_PORT);
    for (const port of Object.values(SPOOF_PORTS)) await agent.listen(port);
    await inet.startSpy();
    mc = await startMinicloud({
      prefix,
      extraEnv: { MINICLOUD_UPLINK: inet.uplink, MINICLOUD_ELASTIC_IP_POOL: inet.elasticIpPool },
    });
    const c = mc.client;
    const image = await defaultImage(mc);
    key = (await c.createKeyPair('sg-key')).keyMaterial as string;

    [oct] = (await freeSecondOctets(1)) as [number];
    vpc = await c.call('POST', '/v1/vpcs', { cidrBlock: `10.${oct}.0.0/16` });
    subnet = await c.call('POST', '/v1/subnets', {
      vpcId: vpc.vpcId,
      cidrBlock: `10.${oct}.1.0/24`,
    });
    const igw = await c.call('POST', '/v1/internet-gateways', {});
    igwId = igw.internetGatewayId;
    await c.call('POST', `/v1/internet-gateways/${igwId}/attach`, { vpcId: vpc.vpcId });

    // The VPC's default group: inbound from its own members, all outbound.
    const groups = (await c.call('GET', `/v1/security-groups?vpcId=${vpc.vpcId}`)).securityGroups;
    expect(groups).toEqual([
      expect.objectContaining({
        groupId: expect.stringMatching(/^sg-[0-9a-f]{17}$/),
        groupName: 'default',
        vpcId: vpc.vpcId,
        isDefault: true,
      }),
    ]);
    defaultGroup = groups[0];
    expect(groups[0].ingressRules).toEqual([
      expect.objectContaining({
        securityGroupRuleId: expect.stringMatching(/^sgr-[0-9a-f]{17}$/),
        ipProtocol: '-1',
        referencedGroupId: defaultGroup.groupId,
      }),
    ]);
    expect(groups[0].egressRules).toEqual([
      expect.objectContaining({ ipProtocol: '-1', cidrIpv4: '0.0.0.0/0' }),
    ]);

    // Three groups: no inbound, all outbound.
    for (const name of ['T', 'X', 'O'] as const) {
      const created = await c.call('POST', '/v1/security-groups', {
        groupName: `e2e-${name}`,
        description: `group ${name} of the security group e2e test`,
        vpcId: vpc.vpcId,
      });
      expect(created).toMatchObject({
        groupId: expect.stringMatching(/^sg-[0-9a-f]{17}$/),
        groupName: `e2e-${name}`,
        vpcId: vpc.vpcId,
        isDefault: false,
        ingressRules: [],
        egressRules: [
          {
            securityGroupRuleId: expect.stringMatching(/^sgr-[0-9a-f]{17}$/),
            ipProtocol: '-1',
            cidrIpv4: '0.0.0.0/0',
          },
        ],
      });
      sg[name] = { groupId: created.groupId, groupName: created.groupName };
    }

    const launch = (groupId: string) =>
      c.runInstances({
        imageId: image.imageId,
        instanceType: 't3.nano',
        keyName: 'sg-key',
        subnetId: subnet.subnetId,
        securityGroupIds: [groupId],
        userData: USER_DATA,
        minCount: 1,
        maxCount: 1,
      });
    const launched = await Promise.all([
      launch(sg.T.groupId),
      launch(sg.X.groupId),
      launch(sg.O.groupId),
    ]);
    const running = await Promise.all(
      launched.map((r) => c.waitForInstanceState(r.instances[0].instanceId, ['running'], 240_000)),
    );
    for (const [name, r, group] of [
      ['t', running[0], sg.T],
      ['x', running[1], sg.X],
      ['o', running[2], sg.O],
    ] as const) {
      expect(r).toMatchObject({
        vpcId: vpc.vpcId,
        subnetId: subnet.subnetId,
        securityGroups: [{ groupId: group.groupId, groupName: group.groupName }],
      });
      g[name] = {
        name,
        instanceId: r.instanceId,
        ip: r.privateIpAddress,
        mac: r.macAddress,
        privateKey: key,
      };
    }

    // The host (control plane) reaches every guest; user-data (identity service) has run.
    await Promise.all(Object.values(g).map(waitUntilBooted));
    for (const guest of Object.values(g)) await untilIdentityAnswers(guest);

    // Membership lives in nft sets: one per group, holding its members' addresses.
    await until(
      'the security-group tables know the three guests',
      async () => {
        const [t, x, o] = await Promise.all(
          [sg.T, sg.X, sg.O].map((grp) => nftSetElements('inet', sgTable(), groupSet(grp.groupId))),
        );
        return (
          JSON.stringify([t, x, o]) === JSON.stringify([[g.t.ip], [g.x.ip], [g.o.ip]]) &&
          (await nftTable('bridge', sgBridgeTable())).includes(g.t.mac.toLowerCase())
        );
      },
      30_000,
    );

    // An Elastic IP for t (1:1 NAT; its rules are t's groups).
    const allocated = await c.call('POST', '/v1/addresses', {});
    eip = { allocationId: allocated.allocationId, publicIp: allocated.publicIp };
    await c.call('POST', `/v1/addresses/${eip.allocationId}/associate`, {
      instanceId: g.t.instanceId,
    });
    expect(await c.describeInstance(g.t.instanceId)).toMatchObject({
      publicIpAddress: eip.publicIp,
    });
    await until(
      `${eip.publicIp} -> ${g.t.ip} in the NAT table`,
      async () => (await nftTable('ip', `${prefix}_vpc`)).includes(`${eip.publicIp} : ${g.t.ip}`),
      30_000,
    );
    // The internet server answers the host (so a failure below is the firewall's).
    expect(await hostConnect(inet.nsIp, WHOAMI_PORT)).toBe(inet.hostIp);
  });

  step(
    'SSH from a CIDR: client1 in, client2 out; other ports time out; ICMP by its rule',
    async () => {
      const c = mc!.client;
      // No inbound rule yet: everything through the Elastic IP is dropped (not refused).
      await expectTimesOut('client1 -> t:22 before any rule', eip.publicIp, 22, client1);

      // Authorize SSH from client1's /32, while client1 probes every 20 ms.
      const probe = agent.probe({
        host: eip.publicIp,
        port: 22,
        intervalMs: 20,
        attemptTimeoutMs: 1000,
        deadlineMs: 30_000,
        localAddress: client1,
      });
      probe.catch(() => undefined);
      await sleep(300);
      const t0 = now();
      const authorized = await c.call('POST', `/v1/security-groups/${sg.T.groupId}/ingress`, {
        ipProtocol: 'tcp',
        fromPort: 22,
        toPort: 22,
        cidrIpv4: `${client1}/32`,
      });
      const apiMs = now() - t0;
      expect(authorized).toMatchObject({
        groupId: sg.T.groupId,
        securityGroupRules: [
          {
            securityGroupRuleId: expect.stringMatching(/^sgr-[0-9a-f]{17}$/),
            ipProtocol: 'tcp',
            fromPort: 22,
            toPort: 22,
            cidrIpv4: `${client1}/32`,
          },
        ],
      });
      const p = await probe;
      expect({ connectedBeforeTheRule: p.connectedAt < t0 }).toEqual({
        connectedBeforeTheRule: false,
      });
      timings.authorizeSshToFirstConnectionMs = Math.round(p.connectedAt - t0);
      console.log(
        `authorize tcp 22 from ${client1}/32: API ${Math.round(apiMs)} ms, first TCP handshake through ${eip.publicIp} after ${timings.authorizeSshToFirstConnectionMs} ms (${p.attempts} probes: ${JSON.stringify(p.outcomes)})`,
      );
      // The probe's other attempts end within their 1 s timeout (until then they count against
      // dropbear's limit of unauthenticated connections per address).
      await sleep(1500);
      expect(await agent.ssh(eip.publicIp, key, `cat ${INSTANCE_ID_FILE}`, 20_000, client1)).toBe(
        `${g.t.instanceId}\n`,
      );

      // client2 is outside the CIDR; 7070 has no rule at all.
      await expectTimesOut('client2 -> t:22 (outside the CIDR)', eip.publicIp, 22, client2);
      const ssh2 = await agent
        .ssh(eip.publicIp, key, 'true', 3000, client2)
        .then(() => 'answered')
        .catch(() => 'no answer');
      expect({ sshFromClient2: ssh2 }).toEqual({ sshFromClient2: 'no answer' });
      await expectTimesOut('client1 -> t:7070 (no rule)', eip.publicIp, IDENTITY_PORT, client1);

      // ICMP: no echo without a rule; with one (type 8, any code) from anywhere, both clients.
      for (const from of [client1, client2]) {
        const r = await agent.ping({
          host: eip.publicIp,
          count: 2,
          timeoutMs: 2000,
          localAddress: from,
        });
        expect({ from, received: r.received }).toEqual({ from, received: 0 });
      }
      const pings = agent.pingProbe({
        host: eip.publicIp,
        intervalMs: 20,
        deadlineMs: 30_000,
        localAddress: client1,
      });
      pings.catch(() => undefined);
      await sleep(300);
      const t1 = now();
      const icmp = await c.call('POST', `/v1/security-groups/${sg.T.groupId}/ingress`, {
        ipProtocol: 'icmp',
        fromPort: 8,
        toPort: -1,
        cidrIpv4: '0.0.0.0/0',
      });
      const icmpRuleId = icmp.securityGroupRules[0].securityGroupRuleId;
      const pr = await pings;
      expect({ replyBeforeTheRule: pr.firstReplyAt < t1 }).toEqual({ replyBeforeTheRule: false });
      timings.authorizeIcmpToFirstReplyMs = Math.round(pr.firstReplyAt - t1);
      console.log(
        `authorize icmp type 8 from 0.0.0.0/0: first echo reply through ${eip.publicIp} after ${timings.authorizeIcmpToFirstReplyMs} ms`,
      );
      const fromClient2 = await agent.ping({
        host: eip.publicIp,
        count: 2,
        timeoutMs: 2000,
        localAddress: client2,
      });
      expect(fromClient2.received).toBeGreaterThan(0);

      // Revoked (by rule id): no echo again; SSH from client1 unaffected.
      await c.call('DELETE', `/v1/security-groups/${sg.T.groupId}/rules/${icmpRuleId}`);
      await until(
        'pings through the Elastic IP stop after the icmp rule is revoked',
        async () =>
          (
            await agent.ping({
              host: eip.publicIp,
              count: 1,
              timeoutMs: 1000,
              localAddress: client1,
            })
          ).received === 0,
        30_000,
      );
      const t = await c.call('GET', `/v1/security-groups/${sg.T.groupId}`);
      expect(
        t.ingressRules.map((r: any) => [r.ipProtocol, r.fromPort, r.toPort, r.cidrIpv4]),
      ).toEqual([['tcp', 22, 22, `${client1}/32`]]);
      expect(await agent.ssh(eip.publicIp, key, 'echo still', 20_000, client1)).toBe('still\n');
    },
  );

  step('a rule from group X admits members of X only, and a guest added to X at once', async () => {
    const c = mc!.client;
    // x (in X) -> t:7070, measured from the authorize call.
    let ruleId = '';
    const authorize = await measureFromGuest(g.x, g.t, async () => {
      const r = await c.call('POST', `/v1/security-groups/${sg.T.groupId}/ingress`, {
        ipProtocol: 'tcp',
        fromPort: IDENTITY_PORT,
        toPort: IDENTITY_PORT,
        referencedGroupId: sg.X.groupId,
      });
      expect(r.securityGroupRules).toEqual([
        expect.objectContaining({ referencedGroupId: sg.X.groupId, cidrIpv4: null }),
      ]);
      ruleId = r.securityGroupRules[0].securityGroupRuleId;
    });
    expect(authorize.answer).toBe(g.t.instanceId);
    timings.authorizeGroupRuleToFirstConnectionMs = authorize.ms;
    console.log(
      `authorize tcp ${IDENTITY_PORT} from group X on T: API ${authorize.apiMs} ms, x's first connection to t after ${authorize.ms} ms (${authorize.attempts} attempts)`,
    );
    expect(ruleId).toMatch(/^sgr-/);
    expect(await nftTable('inet', sgTable())).toContain(ruleId);

    // o is not in X: nothing; nor does the rule let the internet in.
    await expectFailsInGuest('o -> t:7070 (o not in X)', g.o, tcpRead(g.t.ip, IDENTITY_PORT, 3));
    await expectTimesOut('client1 -> t:7070 (rule is for X)', eip.publicIp, IDENTITY_PORT, client1);

    // o joins X (keeping O): admitted within a second.
    let modified: any;
    const join = await measureFromGuest(g.o, g.t, async () => {
      modified = await c.call('PUT', `/v1/instances/${g.o.instanceId}/security-groups`, {
        securityGroupIds: [sg.O.groupId, sg.X.groupId],
      });
    });
    expect(join.answer).toBe(g.t.instanceId);
    timings.membershipChangeToFirstConnectionMs = join.ms;
    console.log(
      `o added to X: API ${join.apiMs} ms, o's first connection to t after ${join.ms} ms (${join.attempts} attempts)`,
    );
    expect(modified).toMatchObject({
      instanceId: g.o.instanceId,
      securityGroups: [
        { groupId: sg.O.groupId, groupName: sg.O.groupName },
        { groupId: sg.X.groupId, groupName: sg.X.groupName },
      ],
    });
    expect(await c.describeInstance(g.o.instanceId)).toMatchObject({
      securityGroups: [{ groupId: sg.O.groupId }, { groupId: sg.X.groupId }],
    });
    expect(await nftSetElements('inet', sgTable(), groupSet(sg.X.groupId))).toEqual(
      [g.x.ip, g.o.ip].sort(),
    );
    // The issue: "adding that guest to X admits it within a second".
    expect({ ms: join.ms, withinASecond: join.ms < 1000 }).toEqual({
      ms: join.ms,
      withinASecond: true,
    });

    // And out again: new connections are refused.
    await c.call('PUT', `/v1/instances/${g.o.instanceId}/security-groups`, {
      securityGroupIds: [sg.O.groupId],
    });
    await untilFailsInGuest(
      'o -> t:7070 fails once o left X',
      g.o,
      tcpRead(g.t.ip, IDENTITY_PORT, 3),
    );
    await expectFailsInGuest('o -> t:7070 (o left X)', g.o, tcpRead(g.t.ip, IDENTITY_PORT, 3));
    expect(await nftSetElements('inet', sgTable(), groupSet(sg.X.groupId))).toEqual([g.x.ip]);
    // x is still admitted.
    await untilInGuest('x -> t:7070 still', g.x, tcpRead(g.t.ip, IDENTITY_PORT), g.t.instanceId);
  });

  step(
    'revoking the egress rule stops outbound attempts; a narrower one admits only its port',
    async () => {
      const c = mc!.client;
      await untilInGuest('o reaches the internet', g.o, askWhoAmI(), inet!.hostIp);
      await untilInGuest('o pings the internet', g.o, `ping -c 1 -W 2 ${inet!.nsIp}`);

      const revoked = await c.call('POST', `/v1/security-groups/${sg.O.groupId}/egress/revoke`, {
        ipProtocol: '-1',
        cidrIpv4: '0.0.0.0/0',
      });
      expect(revoked.revokedSecurityGroupRules).toEqual([
        expect.objectContaining({ ipProtocol: '-1', cidrIpv4: '0.0.0.0/0', isEgress: true }),
      ]);
      expect((await c.call('GET', `/v1/security-groups/${sg.O.groupId}`)).egressRules).toEqual([]);
      await untilFailsInGuest('o -> internet fails after the revoke', g.o, askWhoAmI());
      // From now on nothing of o's arrives: three more attempts and pings, no new peer.
      const before = (await agent.peers(WHOAMI_PORT)).length;
      for (let i = 0; i < 3; i++)
        await expectFailsInGuest(`o -> internet after revoke (${i + 1})`, g.o, askWhoAmI());
      await expectFailsInGuest(
        'o pings the internet after revoke',
        g.o,
        `ping -c 2 -W 2 ${inet!.nsIp}`,
      );
      expect((await agent.peers(WHOAMI_PORT)).slice(before)).toEqual([]);
      // Other guests' egress is untouched.
      await untilInGuest('x still reaches the internet', g.x, askWhoAmI(), inet!.hostIp);

      // A narrower egress rule: tcp to the server's port only (pings stay blocked).
      await c.call('POST', `/v1/security-groups/${sg.O.groupId}/egress`, {
        ipProtocol: 'tcp',
        fromPort: WHOAMI_PORT,
        toPort: WHOAMI_PORT,
        cidrIpv4: `${inet!.nsIp}/32`,
      });
      await untilInGuest('o reaches the server port again', g.o, askWhoAmI(), inet!.hostIp);
      await expectFailsInGuest(
        'o pings the internet (not allowed)',
        g.o,
        `ping -c 2 -W 2 ${inet!.nsIp}`,
      );
      await expectFailsInGuest(
        'o -> another internet port (not allowed)',
        g.o,
        askWhoAmI(SPOOF_PORTS.control),
      );
    },
  );

  step('a guest that changes its IP or its MAC gets nothing through', async () => {
    const ns = inet!.nsIp;
    // Every TCP SYN and ping arriving in the namespace is recorded from here on.
    await inet!.clearSpy();
    // Control: x's own address and MAC work (masqueraded to the uplink's address).
    await untilInGuest(
      'x -> internet (control)',
      g.x,
      askWhoAmI(SPOOF_PORTS.control),
      inet!.hostIp,
    );
    await untilInGuest('x pings the internet (control)', g.x, `ping -c 1 -W 2 ${ns}`);
    const control = await inet!.spied();
    expect(control.tcpSyn).toContain(`${inet!.hostIp}:${SPOOF_PORTS.control}`);
    expect(control.icmpEcho).toContain(inet!.hostIp);
    await inet!.clearSpy();

    // Another source address: an unused one of the subnet, then t's (which has an Elastic IP:
    // a packet that got out would arrive from it). A route with `src` makes bash's /dev/tcp use
    // it; ping takes -I.
    const unused = `10.${oct}.1.233`;
    expect(Object.values(g).map((x) => x.ip)).not.toContain(unused);
    const spoofIp = [
      `gw=$(ip route | awk '/^default/ {print $3; exit}')`,
      `try() { if timeout 4 bash -c "exec 3<>/dev/tcp/${ns}/$2 && cat <&3" >/dev/null 2>&1; then echo "$1=through"; else echo "$1=blocked"; fi; }`,
      `tryping() { if ping -c 2 -W 2 -I $2 ${ns} >/dev/null 2>&1; then echo "$1=through"; else echo "$1=blocked"; fi; }`,
      `for a in ${unused}:unused:${SPOOF_PORTS.unusedIp} ${g.t.ip}:other:${SPOOF_PORTS.otherGuestIp}; do`,
      `  ip=\${a%%:*}; rest=\${a#*:}; name=\${rest%%:*}; port=\${rest#*:}`,
      `  ip addr add $ip/32 dev eth0`,
      `  ip route add ${ns}/32 via $gw dev eth0 src $ip`,
      `  echo "route-$name=$(ip route get ${ns} | head -1 | grep -o 'src [0-9.]*')"`,
      `  try tcp-$name $port`,
      `  tryping icmp-$name $ip`,
      `  ip route del ${ns}/32`,
      `  ip addr del $ip/32 dev eth0`,
      `done`,
      `ip addr show dev eth0 | grep -c 'inet '`,
    ].join('\n');
    const ipResult = await inGuest(g.x, spoofIp);
    console.log(`x with other source addresses:\n${ipResult.out}`);
    expect(ipResult.out.split('\n')).toEqual([
      `route-unused=src ${unused}`,
      'tcp-unused=blocked',
      'icmp-unused=blocked',
      `route-other=src ${g.t.ip}`,
      'tcp-other=blocked',
      'icmp-other=blocked',
      '1',
    ]);
    expect(await inet!.spied()).toEqual({ tcpSyn: [], icmpEcho: [] });
    for (const port of [SPOOF_PORTS.unusedIp, SPOOF_PORTS.otherGuestIp])
      expect({ port, peers: await agent.peers(port) }).toEqual({ port, peers: [] });
    // x still works with its own address.
    await untilInGuest(
      'x -> internet after the IP spoofing',
      g.x,
      askWhoAmI(SPOOF_PORTS.control),
      inet!.hostIp,
    );
    await inet!.clearSpy();

    // Another MAC: in a background script (x's replies to the host's SSH would be dropped too),
    // which restores the MAC and checks that x works again; results in a file.
    const fakeMac = '02:5e:00:c0:ff:ee';
    const macScript = [
      `gw=$(ip route | awk '/^default/ {print $3; exit}')`,
      `real=$(cat /sys/class/net/eth0/address)`,
      `try() { if timeout 4 bash -c "exec 3<>/dev/tcp/${ns}/$2 && cat <&3" >/dev/null 2>&1; then echo "$1=through"; else echo "$1=blocked"; fi; }`,
      `setmac() { ip link set dev eth0 address $1 2>/dev/null && return 0; ip link set dev eth0 down; ip link set dev eth0 address $1; ip link set dev eth0 up; ip route replace default via $gw dev eth0; echo "mode=down-up"; }`,
      `setmac ${fakeMac}`,
      `echo "mac=$(cat /sys/class/net/eth0/address)"`,
      `try tcp-mac ${SPOOF_PORTS.otherMac}`,
      `if ping -c 2 -W 2 ${ns} >/dev/null 2>&1; then echo icmp-mac=through; else echo icmp-mac=blocked; fi`,
      `setmac $real`,
      `echo "restored=$(cat /sys/class/net/eth0/address)"`,
      `i=0; while [ $i -lt 10 ]; do try tcp-after ${SPOOF_PORTS.afterMac} >/tmp/mc-mac.after; grep -q through /tmp/mc-mac.after && break; sleep 1; i=$((i + 1)); done; cat /tmp/mc-mac.after`,
    ].join('\n');
    await inGuest(
      g.x,
      `rm -f /tmp/mc-mac.*; cat > /tmp/mc-mac.sh <<'EOF'\n${macScript}\nEOF\n` +
        `setsid bash -c 'bash /tmp/mc-mac.sh >/tmp/mc-mac.out 2>/tmp/mc-mac.err; touch /tmp/mc-mac.done' </dev/null >/dev/null 2>&1 &`,
    );
    await until(
      'the MAC script in x to finish',
      async () => (await inGuest(g.x, 'test -e /tmp/mc-mac.done')).code === 0,
      90_000,
    );
    const macOut = (await inGuest(g.x, 'cat /tmp/mc-mac.out /tmp/mc-mac.err')).out;
    console.log(`x with another MAC:\n${macOut}`);
    const lines = macOut.split('\n').filter((l) => !l.startsWith('mode='));
    expect(lines).toEqual([
      `mac=${fakeMac}`,
      'tcp-mac=blocked',
      'icmp-mac=blocked',
      `restored=${g.x.mac.toLowerCase()}`,
      'tcp-after=through',
    ]);
    // Nothing arrived while x had the other MAC; its connection afterwards did.
    expect(await inet!.spied()).toEqual({
      tcpSyn: [`${inet!.hostIp}:${SPOOF_PORTS.afterMac}`],
      icmpEcho: [],
    });
    expect(await agent.peers(SPOOF_PORTS.otherMac)).toEqual([]);
    // And t (whose address x used) is still reachable through its Elastic IP.
    expect(await agent.ssh(eip.publicIp, key, 'echo t-ok', 20_000, client1)).toBe('t-ok\n');
  });

  step('an established SSH session survives adding (and revoking) an unrelated rule', async () => {
    const c = mc!.client;
    const session = await agent.sshOpen(eip.publicIp, key, { localAddress: client1 });
    try {
      expect(await session.run(`cat ${INSTANCE_ID_FILE}`)).toBe(`${g.t.instanceId}\n`);
      // A command streaming for ~3 s on the session while the rule set is replaced.
      const streaming = session.run(
        'i=0; while [ $i -lt 30 ]; do echo $i; i=$((i + 1)); sleep 0.1; done',
        30_000,
      );
      streaming.catch(() => undefined);
      await sleep(500);
      const added = await c.call('POST', `/v1/security-groups/${sg.T.groupId}/ingress`, {
        ipProtocol: 'udp',
        fromPort: 5353,
        toPort: 5353,
        cidrIpv4: '192.0.2.0/24',
      });
      const ruleId = added.securityGroupRules[0].securityGroupRuleId;
      await until(
        `rule ${ruleId} in nft`,
        async () => (await nftTable('inet', sgTable())).includes(ruleId),
        10_000,
      );
      expect((await streaming).trim().split('\n')).toEqual(
        Array.from({ length: 30 }, (_, i) => String(i)),
      );
      expect(await session.run('echo after-authorize')).toBe('after-authorize\n');

      await c.call('POST', `/v1/security-groups/${sg.T.groupId}/ingress/revoke`, {
        ipProtocol: 'udp',
        fromPort: 5353,
        toPort: 5353,
        cidrIpv4: '192.0.2.0/24',
      });
      await until(
        `rule ${ruleId} out of nft`,
        async () => !(await nftTable('inet', sgTable())).includes(ruleId),
        10_000,
      );
      expect(await session.run('echo after-revoke')).toBe('after-revoke\n');
    } finally {
      await session.close();
    }
  });

  step(
    'deleting: refused while used or referenced; then nothing of the groups in nft',
    async () => {
      const c = mc!.client;
      const dependency = { status: 409, code: 'DependencyViolation' };
      expect(await apiError('DELETE', `/v1/security-groups/${sg.T.groupId}`)).toEqual(dependency);
      expect(await apiError('DELETE', `/v1/security-groups/${sg.X.groupId}`)).toEqual(dependency);
      const deleteDefault = await apiError('DELETE', `/v1/security-groups/${defaultGroup.groupId}`);
      expect(deleteDefault.code).toBe('CannotDelete');
      expect(deleteDefault.status).toBeGreaterThanOrEqual(400);
      expect(deleteDefault.status).toBeLessThan(500);

      await c.call('POST', `/v1/addresses/${eip.allocationId}/disassociate`);
      await c.call('DELETE', `/v1/addresses/${eip.allocationId}`);
      await terminateGuests(c, Object.values(g));
      // The ports are gone from both tables (addresses, MACs).
      await until(
        'the terminated guests out of the security-group tables',
        async () => {
          const both =
            (await nftTable('inet', sgTable())) + (await nftTable('bridge', sgBridgeTable()));
          return Object.values(g).every(
            (guest) => !mentionsIp(both, guest.ip) && !both.includes(guest.mac.toLowerCase()),
          );
        },
        30_000,
      );

      // X is still referenced by a rule of T.
      expect(await apiError('DELETE', `/v1/security-groups/${sg.X.groupId}`)).toEqual(dependency);
      for (const name of ['T', 'X', 'O'] as const) {
        expect(await c.call('DELETE', `/v1/security-groups/${sg[name].groupId}`)).toMatchObject({
          groupId: sg[name].groupId,
        });
      }
      expect(await apiError('GET', `/v1/security-groups/${sg.T.groupId}`)).toEqual({
        status: 404,
        code: 'InvalidGroup.NotFound',
      });
      await until(
        'no set or chain of the deleted groups in nft',
        async () => {
          const table = await nftTable('inet', sgTable());
          return Object.values(sg).every((grp) => !table.includes(grp.groupId.slice(3)));
        },
        30_000,
      );

      await c.call('POST', `/v1/internet-gateways/${igwId}/detach`, { vpcId: vpc.vpcId });
      await c.call('DELETE', `/v1/internet-gateways/${igwId}`);
      await c.call('DELETE', `/v1/subnets/${subnet.subnetId}`);
      await c.call('DELETE', `/v1/vpcs/${vpc.vpcId}`);
      expect(
        (await c.call('GET', '/v1/security-groups')).securityGroups.map((x: any) => x.vpcId),
      ).not.toContain(vpc.vpcId);
      // The VPC's default group and its bridge leave the tables too.
      await until(
        'nothing of the VPC in the security-group tables',
        async () => {
          const table =
            (await nftTable('inet', sgTable())) + (await nftTable('bridge', sgBridgeTable()));
          return !table.includes(defaultGroup.groupId.slice(3)) && !table.includes(vpc.vpcId);
        },
        30_000,
      );
    },
  );
});
