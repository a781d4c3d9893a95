/**
 * Render + apply time of the whole VPC ruleset (issue 3's figure: 100 VPCs, 500 instances,
 * 200 Elastic IPs), and of one incremental Elastic IP move, on the real kernel.
 *
 *   node --import tsx packages/network/bench/vpc-ruleset.bench.ts [runs=10]
 *
 * Applies into a uniquely named table (mtb<2 chars>_vpc) that is deleted at the end, even on
 * failure. No bridges are needed: the rules match interface names (iifname/oifname strings), so
 * they load whether the interfaces exist or not. The table only affects traffic to its own
 * addresses (198.19.128.0/17, RFC 2544 benchmark space) and from bridges that do not exist.
 * Instances do not appear in this ruleset (only the Elastic IPs pointing at them do), so the
 * instance count only shapes which private addresses the Elastic IPs map to.
 */
import { intToIp, vpcBridgeName } from '@minicloud/domain';
import { randomBytes } from 'node:crypto';
import { run } from '@minicloud/host';
import {
  LinuxNetworkDriver,
  planVpcRuleset,
  renderVpcRulesetPlan,
  type ElasticIpModel,
  type VpcModel,
  type VpcNetworkModel,
} from '@minicloud/network';

const RUNS = Number(process.argv[2] ?? 10);
const chars = 'abcdefghijklmnopqrstuvwxyz0123456789';
const b = randomBytes(2);
const PREFIX = `mtb${chars[b[0]! % 36]}${chars[b[1]! % 36]}`;
const TABLE = `${PREFIX}_vpc`;
const UPLINK = `${PREFIX}up0`;
const PUBLIC_BASE = 198 * 2 ** 24 + 19 * 2 ** 16 + 128 * 2 ** 8; // 198.19.128.0

function hex17(n: number): string {
  return n.toString(16).padStart(17, '0');
}

/** vpcs VPCs (/20 each, two /24 subnets, 80% with an internet gateway), instances spread evenly. */
export function benchModel(
  vpcCount: number,
  instanceCount: number,
  eipCount: number,
): VpcNetworkModel {
  const vpcs: VpcModel[] = [];
  for (let i = 0; i < vpcCount; i++) {
    const base = (10 << 24) + i * 4096; // 10.0.0.0/20, 10.0.16.0/20, ...
    // the bridge name takes the first 9 hex digits of the id: keep those distinct
    const vpcId = `vpc-${(i + 1).toString(16).padStart(9, '0')}00000000`;
    vpcs.push({
      vpcId,
      bridge: vpcBridgeName(PREFIX, vpcId),
      cidr: `${intToIp(base)}/20`,
      subnets: [0, 1].map((s) => ({
        subnetId: `subnet-${hex17(i * 2 + s + 1)}`,
        cidr: `${intToIp(base + s * 256)}/24`,
        gatewayIp: intToIp(base + s * 256 + 1),
      })),
      internetGateway: i % 5 !== 4,
    });
  }
  // Instance k lives in VPC k % vpcCount, subnet (k / vpcCount) % 2, host .10 + k / (2 * vpcCount).
  const instanceIp = (k: number) => {
    const v = k % vpcCount;
    const s = Math.floor(k / vpcCount) % 2;
    const h = 10 + Math.floor(k / (2 * vpcCount));
    return { vpc: vpcs[v]!, ip: intToIp((10 << 24) + v * 4096 + s * 256 + h) };
  };
  const elasticIps: ElasticIpModel[] = [];
  let k = 0;
  for (let e = 0; e < eipCount; e++) {
    const publicIp = intToIp(PUBLIC_BASE + e + 1);
    if (e % 4 === 3) {
      elasticIps.push({ publicIp, privateIp: null }); // allocated, not associated
      continue;
    }
    // next instance in a VPC with an internet gateway
    let inst = instanceIp(k++ % instanceCount);
    while (!inst.vpc.internetGateway) inst = instanceIp(k++ % instanceCount);
    elasticIps.push({ publicIp, privateIp: inst.ip, vpcId: inst.vpc.vpcId });
  }
  return { table: TABLE, uplink: UPLINK, vpcs, elasticIps };
}

function quantile(xs: number[], q: number): number {
  return [...xs].sort((a, c) => a - c)[Math.floor((xs.length - 1) * q)]!;
}

async function measure(
  driver: LinuxNetworkDriver,
  vpcs: number,
  instances: number,
  eips: number,
): Promise<string> {
  const model = benchModel(vpcs, instances, eips);
  const render: number[] = [];
  const apply: number[] = [];
  const total: number[] = [];
  let bytes = 0;
  for (let i = 0; i < RUNS; i++) {
    // Alternate two models (one association different) so every run really changes something.
    const m =
      i % 2 === 0
        ? model
        : {
            ...model,
            elasticIps: model.elasticIps.map((e, j) =>
              j === 0 ? { publicIp: e.publicIp, privateIp: null } : e,
            ),
          };
    const t0 = performance.now();
    const r = await driver.applyVpcRuleset(m, { flushConntrack: false });
    total.push(performance.now() - t0);
    render.push(r.renderMs);
    apply.push(r.applyMs);
    bytes = r.bytes;
  }
  // Incremental: move one Elastic IP between two instances, 50 times.
  const first = model.elasticIps.find((e) => e.privateIp !== null)!;
  const moves: number[] = [];
  const moveNft: number[] = [];
  // move `first` between its instance and an unused address of the same subnet
  const spare = first.privateIp!.replace(/\.[0-9]+$/, '.250');
  for (let i = 0; i < 50; i++) {
    const t0 = performance.now();
    const r = await driver.associateElasticIp({
      table: TABLE,
      publicIp: first.publicIp,
      privateIp: i % 2 === 0 ? spare : first.privateIp!,
    });
    moves.push(performance.now() - t0);
    moveNft.push(r.applyMs);
  }
  const planOnly: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    renderVpcRulesetPlan(planVpcRuleset(model));
    planOnly.push(performance.now() - t0);
  }
  const f = (xs: number[]) => `${quantile(xs, 0.5).toFixed(1)}`.padStart(7);
  return (
    `${String(vpcs).padStart(5)} ${String(instances).padStart(9)} ${String(eips).padStart(5)} ` +
    `${String(bytes).padStart(8)} ${f(planOnly)} ${f(apply)} ${f(total)} ${f(moveNft)} ${f(moves)}`
  );
}

async function main(): Promise<void> {
  const driver = new LinuxNetworkDriver();
  const rows: string[] = [];
  try {
    for (const [v, i, e] of [
      [10, 50, 20],
      [100, 500, 200],
      [1000, 5000, 2000],
    ] as const) {
      rows.push(await measure(driver, v, i, e));
    }
  } finally {
    await driver.removeVpcRuleset(TABLE);
    const left = await run('nft', ['list', 'tables'], { timeoutMs: 10_000 });
    if (left.stdout.includes(TABLE)) console.error(`table ${TABLE} was not removed!`);
  }
  console.log(
    `VPC ruleset, p50 over ${RUNS} runs (apply = one nft -f of the whole table; ` +
      `move = associateElasticIp, p50 of 50: its nft element update, and the whole call with ` +
      `the conntrack flush)\n` +
      ` VPCs instances  EIPs  script B render ms apply ms  total ms move nft move ms\n` +
      rows.join('\n'),
  );
}

if (process.env.VPC_BENCH_RENDER_ONLY) {
  for (const [v, i, e] of [
    [100, 500, 200],
    [1000, 5000, 2000],
  ] as const) {
    const m = benchModel(v, i, e);
    const xs: number[] = [];
    for (let r = 0; r < 50; r++) {
      const t0 = performance.now();
      renderVpcRulesetPlan(planVpcRuleset(m));
      xs.push(performance.now() - t0);
    }
    console.log(
      `render ${v}/${i}/${e}: p50 ${quantile(xs, 0.5).toFixed(2)} ms, min ${Math.min(...xs).toFixed(2)} ms`,
    );
  }
} else {
  await main();
}
