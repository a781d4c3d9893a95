import { vpcTableName } from '@minicloud/domain';
import {
  findElasticIps,
  listElasticIps,
  listPublicPoolCidrs,
  listVpcIdsWithInternetGateway,
  listVpcsWithSubnets,
  type VpcWithSubnetsAndGateway,
} from '@minicloud/db';
import type { VpcNetworkModel } from '@minicloud/network';
import type { WorkerDeps } from '../context.js';
import { buildRulesetModel } from './ruleset-model.js';
import { forEachLimit, messageOf } from './util.js';
import { stateOf } from './state.js';

/**
 * The VPC table and the Elastic IPs on the uplink, from the database. Every "read the Elastic IPs,
 * write them into nft" runs under one lock in this process: whichever runs later applies the
 * later association, so a converge that started before an associate never puts the old one back.
 */

const ELASTIC_IP_LOCK = 'network:elastic-ips';

/** What applying the ruleset reports (a part of the converge report). */
export interface RulesetReport {
  elasticIps: { added: string[]; removed: string[]; changed: string[] };
  skipped: string[];
  notes: string[];
}

/**
 * The whole VPC table from the database (the VPC rows given, or read now; the Elastic IPs read
 * under the lock), and the Elastic IP addresses on the uplink.
 */
export async function applyVpcRulesetNow(
  deps: WorkerDeps,
  report: RulesetReport,
  vpcRows?: readonly VpcWithSubnetsAndGateway[],
): Promise<void> {
  const rows = vpcRows ?? (await listVpcsWithSubnets(deps.db));
  const pools = await listPublicPoolCidrs(deps.db);
  await deps.locks.run(ELASTIC_IP_LOCK, async () => {
    const eips = await listElasticIps(deps.db);
    const model = buildRulesetModel(deps.settings, rows, eips, report.skipped);
    await applyRulesetAndAddresses(deps, model.network, pools, report);
  });
}

/**
 * The nft table from the model; Elastic IP addresses on the uplink in the order that never leaves
 * a public address answered by the host: released ones off the uplink before the table lets go
 * of them, new ones on only after the table holds them. Addresses whose association changed (or
 * that just arrived) are announced in the background.
 */
async function applyRulesetAndAddresses(
  deps: WorkerDeps,
  model: VpcNetworkModel,
  pools: string[],
  report: RulesetReport,
): Promise<void> {
  const { network, settings } = deps;
  const uplink = await presentUplink(deps);
  const spec = { uplink: uplink ?? '', prefix: settings.prefix, pools };
  const want = new Set(model.elasticIps.map((e) => e.publicIp));
  const problems: string[] = [];
  // What the uplink already holds (null: unknown, ensure every address).
  let held: Set<string> | null = null;
  if (uplink) {
    try {
      held = new Set(await network.listElasticIpAddresses(spec));
      for (const ip of held) {
        if (want.has(ip)) continue;
        await network.removeElasticIpAddress({ uplink, publicIp: ip });
        report.elasticIps.removed.push(ip);
      }
    } catch (e) {
      problems.push(`Elastic IPs off ${uplink}: ${messageOf(e)}`);
    }
  } else if (want.size && settings.uplink) {
    report.notes.push(`uplink ${settings.uplink} does not exist: Elastic IPs are not on it`);
  }

  const r = await network.applyVpcRuleset(model);
  report.notes.push(...r.notes);
  report.elasticIps.changed.push(...r.changedElasticIps);
  if (!uplink) return;

  for (const ip of want) {
    if (held?.has(ip)) continue;
    try {
      if (await network.ensureElasticIpAddress({ ...spec, uplink, publicIp: ip }))
        report.elasticIps.added.push(ip);
    } catch (e) {
      problems.push(`Elastic IP ${ip}: ${messageOf(e)}`);
    }
  }
  const announce = [...new Set([...report.elasticIps.added, ...r.changedElasticIps])].filter((ip) =>
    want.has(ip),
  );
  if (announce.length) announceInBackground(deps, uplink, announce);
  if (problems.length) throw new Error(problems.join('; '));
}

/**
 * The fast path of an Elastic IP (dis)association: the changed addresses as nft map-element
 * updates, read from the database now (so the latest association wins), before the full
 * converge that follows. Moves the first packet from "after a whole converge" (a few hundred ms)
 * to a few milliseconds after the job starts.
 */
export async function applyElasticIpsNow(deps: WorkerDeps, allocationIds: string[]): Promise<void> {
  await deps.locks.run(ELASTIC_IP_LOCK, () => applyElasticIpsLocked(deps, allocationIds));
}

async function applyElasticIpsLocked(deps: WorkerDeps, allocationIds: string[]): Promise<void> {
  const { db, settings } = deps;
  const [rows, withGateway] = await Promise.all([
    findElasticIps(db, allocationIds),
    listVpcIdsWithInternetGateway(db),
  ]);
  if (!rows.length) return;
  const changes = rows.map((r) => ({
    publicIp: r.publicIp,
    privateIp: r.privateIp && r.vpcId && withGateway.has(r.vpcId) ? r.privateIp : null,
  }));
  const result = await deps.network.updateElasticIps(vpcTableName(settings.prefix), changes);
  const uplink = await presentUplink(deps);
  if (!uplink || !result.changed.length) return;
  // An address associated right after its allocation may not be on the uplink yet (the
  // allocation's converge is still to come): put it there now (it is held in nft already).
  const onUplink: string[] = [];
  for (const c of changes) {
    if (c.privateIp === null || !result.changed.includes(c.publicIp)) continue;
    try {
      await deps.network.ensureElasticIpAddress({
        uplink,
        publicIp: c.publicIp,
        prefix: settings.prefix,
      });
      onUplink.push(c.publicIp);
    } catch (e) {
      deps.log(`network: putting ${c.publicIp} on ${uplink}: ${messageOf(e)}`);
    }
  }
  if (onUplink.length) announceInBackground(deps, uplink, onUplink);
}

/** Gratuitous ARPs (arping waits ~1 s for replies): never in the job's way, errors logged. */
function announceInBackground(deps: WorkerDeps, uplink: string, ips: string[]): void {
  const state = stateOf(deps);
  state.announcing = state.announcing.then(() =>
    forEachLimit(ips, 8, async (ip) => {
      try {
        const a = await deps.network.announceElasticIp({ uplink, publicIp: ip });
        for (const n of a.notes) deps.log(`network: ${n}`);
      } catch (e) {
        deps.log(`network: announcing ${ip} on ${uplink} failed: ${messageOf(e)}`);
      }
    }),
  );
}

/** The configured uplink, when it exists on the host. */
export async function presentUplink(deps: WorkerDeps): Promise<string | null> {
  const { uplink } = deps.settings;
  return uplink !== null && (await deps.network.hasLink(uplink)) ? uplink : null;
}
