/**
 * Render + apply time of the whole security group model (issue 4's figure: 1000 instances and
 * 5000 rules) and how it grows from 100 to 1000 instances (5 rules per instance), plus the small
 * transactions: a membership change, a launch + terminate, and one group's rules replaced.
 *
 *   node --import tsx packages/network/bench/sg-ruleset.bench.ts [runs=10]
 *
 * Applies into uniquely named tables (inet mtb<2 chars>_sg, bridge mtb<2 chars>_sgb) that are
 * deleted at the end, even on failure. No bridges or taps are needed: the rules match interface
 * names (strings), and since none of the model's bridges or taps exist, the tables let all of
 * this host's traffic through untouched.
 *
 * The model: one VPC (bridge) per 100 instances; per VPC a default group (inbound from itself,
 * all outbound); one application group per 5 instances with 20 inbound rules (tcp/udp ports and
 * ranges from CIDRs, icmp, other groups) and 5 outbound rules; each instance in its VPC's default
 * group and its application group, every third one also in the next application group.
 */
import { intToIp, vpcBridgeName } from '@minicloud/domain';
import { randomBytes } from 'node:crypto';
import { run } from '@minicloud/host';
import {
  LinuxNetworkDriver,
  planSecurityGroups,
  renderSecurityGroupPlan,
  type SecurityGroupModel,
  type SecurityGroupNetworkModel,
  type SecurityGroupPortModel,
  type SecurityGroupRuleModel,
} from '@minicloud/network';

const RUNS = Number(process.argv[2] ?? 10);
const chars = 'abcdefghijklmnopqrstuvwxyz0123456789';
const b = randomBytes(2);
const PREFIX = `mtb${chars[b[0]! % 36]}${chars[b[1]! % 36]}`;

function hex(n: number, width: number): string {
  return n.toString(16).padStart(width, '0');
}

export function sgBenchModel(instances: number): SecurityGroupNetworkModel {
  const vpcCount = Math.max(1, Math.ceil(instances / 100));
  let ruleSeq = 0;
  const rule = (r: Omit<SecurityGroupRuleModel, 'ruleId'>): SecurityGroupRuleModel => ({
    ruleId: `sgr-${hex(++ruleSeq, 17)}`,
    ...r,
  });
  const bridges: SecurityGroupNetworkModel['bridges'][number][] = [];
  const groups: SecurityGroupModel[] = [];
  const ports: SecurityGroupPortModel[] = [];
  const defaultGroup = (v: number) => `sg-${hex(0xd0000 + v, 17)}`;
  const appGroup = (a: number) => `sg-${hex(0xa0000 + a, 17)}`;
  const vpcId = (v: number) => `vpc-${hex(v + 1, 9)}00000000`;
  for (let v = 0; v < vpcCount; v++) {
    bridges.push({
      bridge: vpcBridgeName(PREFIX, vpcId(v)),
      vpcId: vpcId(v),
      routerIps: [`10.${v}.0.1`],
    });
    groups.push({
      groupId: defaultGroup(v),
      vpcId: vpcId(v),
      ingress: [rule({ ipProtocol: '-1', referencedGroupId: defaultGroup(v) })],
      egress: [rule({ ipProtocol: '-1', cidr: '0.0.0.0/0' })],
    });
  }
  // instance k: VPC k / 100, application group k / 5
  const appCount = Math.ceil(instances / 5);
  const appVpc = (a: number) => Math.floor((a * 5) / 100);
  for (let a = 0; a < appCount; a++) {
    const v = appVpc(a);
    const peer = a + 1 < appCount && appVpc(a + 1) === v ? appGroup(a + 1) : defaultGroup(v);
    const ingress: SecurityGroupRuleModel[] = [];
    for (let i = 0; i < 12; i++) {
      ingress.push(
        rule({
          ipProtocol: i % 3 === 2 ? 'udp' : 'tcp',
          fromPort: 1000 + i * 10,
          toPort: 1000 + i * 10 + (i % 2) * 9,
          cidr: `10.${v}.${i}.0/24`,
        }),
      );
    }
    ingress.push(
      rule({ ipProtocol: 'tcp', fromPort: 22, toPort: 22, cidr: '192.0.2.0/24' }),
      rule({ ipProtocol: 'tcp', fromPort: 443, toPort: 443, cidr: '0.0.0.0/0' }),
      rule({ ipProtocol: 'icmp', fromPort: 8, toPort: -1, cidr: `10.${v}.0.0/16` }),
      rule({ ipProtocol: 'icmp', fromPort: 3, toPort: 4, cidr: '0.0.0.0/0' }),
      rule({ ipProtocol: 'tcp', fromPort: 5432, toPort: 5432, referencedGroupId: peer }),
      rule({ ipProtocol: 'tcp', fromPort: 6379, toPort: 6379, referencedGroupId: appGroup(a) }),
      rule({ ipProtocol: 'udp', fromPort: 8125, toPort: 8125, referencedGroupId: defaultGroup(v) }),
      rule({ ipProtocol: '-1', referencedGroupId: appGroup(a) }),
    );
    groups.push({
      groupId: appGroup(a),
      vpcId: vpcId(v),
      ingress,
      egress: [
        rule({ ipProtocol: 'tcp', fromPort: 443, toPort: 443, cidr: '0.0.0.0/0' }),
        rule({ ipProtocol: 'tcp', fromPort: 80, toPort: 80, cidr: '0.0.0.0/0' }),
        rule({ ipProtocol: 'udp', fromPort: 123, toPort: 123, cidr: '0.0.0.0/0' }),
        rule({ ipProtocol: 'tcp', fromPort: 5432, toPort: 5432, referencedGroupId: peer }),
        rule({ ipProtocol: '-1', referencedGroupId: appGroup(a) }),
      ],
    });
  }
  for (let k = 0; k < instances; k++) {
    const v = Math.floor(k / 100);
    const a = Math.floor(k / 5);
    const groupIds = [defaultGroup(v), appGroup(a)];
    if (k % 3 === 0 && a + 1 < appCount && appVpc(a + 1) === v) groupIds.push(appGroup(a + 1));
    const i = k % 100;
    ports.push({
      tap: `${PREFIX}t${hex(k, 9)}`,
      bridge: bridges[v]!.bridge,
      mac: `52:54:00:${hex(v, 2)}:${hex(Math.floor(i / 256), 2)}:${hex(i % 256, 2)}`,
      ip: intToIp((10 << 24) + (v << 16) + 256 + 10 + i),
      groupIds,
    });
  }
  return { prefix: PREFIX, bridges, groups, ports, hostServices: [{ protocol: 'tcp', port: 80 }] };
}

function quantile(xs: number[], q: number): number {
  return [...xs].sort((x, y) => x - y)[Math.floor((xs.length - 1) * q)]!;
}

const f = (xs: number[]) => `${quantile(xs, 0.5).toFixed(1)}`.padStart(8);

async function measure(driver: LinuxNetworkDriver, instances: number): Promise<string> {
  const model = sgBenchModel(instances);
  const plan = planSecurityGroups(model);
  // Alternate with a model that differs in one rule, so every run really changes something.
  const changed: SecurityGroupNetworkModel = {
    ...model,
    groups: model.groups.map((g, j) =>
      j === 0 ? { ...g, egress: [{ ...g.egress[0]!, cidr: '10.0.0.0/8' }] } : g,
    ),
  };
  const render: number[] = [];
  const apply: number[] = [];
  const total: number[] = [];
  let bytes = 0;
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    const r = await driver.applySecurityGroups(i % 2 === 0 ? model : changed);
    total.push(performance.now() - t0);
    render.push(r.renderMs);
    apply.push(r.applyMs);
    bytes = r.bytes;
  }
  await driver.applySecurityGroups(model);

  // Membership: one instance joins a third group and leaves it again (new combination chains).
  const port = model.ports[1]!; // in two groups
  const third = model.groups.find(
    (g) => !port.groupIds.includes(g.groupId) && g.vpcId === model.groups[0]!.vpcId,
  )!;
  const memberNft: number[] = [];
  const memberCall: number[] = [];
  for (let i = 0; i < 30; i++) {
    const groupIds = i % 2 === 0 ? [...port.groupIds, third.groupId] : port.groupIds;
    const t0 = performance.now();
    const r = await driver.updateMemberships(PREFIX, [{ tap: port.tap, groupIds }]);
    memberCall.push(performance.now() - t0);
    memberNft.push(r.applyMs);
  }
  // Launch + terminate: a port into an existing combination (element adds), then removed.
  const launchNft: number[] = [];
  const launchCall: number[] = [];
  const fresh = {
    ...port,
    tap: `${PREFIX}tfffffffff`,
    mac: '52:54:00:ff:ff:fe',
    ip: '10.0.255.250',
  };
  for (let i = 0; i < 30; i++) {
    const t0 = performance.now();
    const r =
      i % 2 === 0
        ? await driver.updatePorts(PREFIX, { upsert: [fresh] })
        : await driver.updatePorts(PREFIX, { remove: [fresh.tap] });
    launchCall.push(performance.now() - t0);
    launchNft.push(r.applyMs);
  }
  // A rule change: one application group's 25 rules replaced (chains flushed and refilled).
  const app = model.groups[model.groups.length - 1]!;
  const ruleNft: number[] = [];
  const ruleCall: number[] = [];
  for (let i = 0; i < 30; i++) {
    const g = i % 2 === 0 ? { ...app, ingress: app.ingress.slice(1) } : app;
    const t0 = performance.now();
    const r = await driver.replaceGroupRules(PREFIX, [g]);
    ruleCall.push(performance.now() - t0);
    ruleNft.push(r.applyMs);
  }
  const planOnly: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    renderSecurityGroupPlan(planSecurityGroups(model));
    planOnly.push(performance.now() - t0);
  }
  return (
    `${String(instances).padStart(9)} ${String(plan.ruleCount).padStart(6)} ` +
    `${String(plan.groups.length).padStart(6)} ${String(plan.combos.length).padStart(6)} ` +
    `${String(bytes).padStart(8)} ${f(planOnly)} ${f(apply)} ${f(total)} ` +
    `${f(memberNft)} ${f(memberCall)} ${f(launchNft)} ${f(launchCall)} ${f(ruleNft)} ${f(ruleCall)}`
  );
}

async function main(): Promise<void> {
  const driver = new LinuxNetworkDriver();
  const rows: string[] = [];
  try {
    for (const n of [100, 250, 500, 1000]) rows.push(await measure(driver, n));
  } finally {
    await driver.removeSecurityGroupTables(PREFIX);
    const left = await run('nft', ['list', 'tables'], { timeoutMs: 10_000 });
    if (left.stdout.includes(`${PREFIX}_`)) console.error(`tables of ${PREFIX} were not removed!`);
  }
  console.log(
    `Security group tables, p50 over ${RUNS} runs (apply = one nft -f of both tables; ` +
      `render = validate + render; total = the whole applySecurityGroups call); ` +
      `incremental p50 of 30: nft = its nft -f, call = the whole driver call\n` +
      `instances  rules groups combos script B render ms apply ms total ms ` +
      ` join nft join call launch nft launch call  rule nft rule call\n` +
      rows.join('\n'),
  );
}

if (process.env.SG_BENCH_RENDER_ONLY) {
  for (const n of [100, 1000]) {
    const m = sgBenchModel(n);
    const xs: number[] = [];
    for (let r = 0; r < 50; r++) {
      const t0 = performance.now();
      renderSecurityGroupPlan(planSecurityGroups(m));
      xs.push(performance.now() - t0);
    }
    console.log(
      `render ${n} instances: p50 ${quantile(xs, 0.5).toFixed(2)} ms, min ${Math.min(...xs).toFixed(2)} ms`,
    );
  }
} else {
  await main();
}
