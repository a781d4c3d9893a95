import { tapName } from '@minicloud/domain';
import {
  listElasticIps,
  listLiveInstancePorts,
  listVpcsWithSubnets,
  type InstancePortRow,
} from '@minicloud/db';
import type { OwnedLink } from '@minicloud/network';
import type { WorkerDeps } from '../context.js';
import { NetworkConvergeError, type ConvergeReport } from './converge-report.js';
import { applyVpcRulesetNow } from './elastic-ips.js';
import { syncVpcReservations } from './reservations.js';
import { forEachLimit, messageOf } from './util.js';
import { buildRulesetModel, type HostVpc } from './ruleset-model.js';
import { applySecurityGroupsNow } from './security-groups.js';
import { stateOf } from './state.js';
import { ensureVpc, markAvailable, removeUnusedVpcNetworks } from './vpcs.js';

/**
 * Make the host's VPC networks match the database: the VPC nft table (isolation, NAT, Elastic
 * IPs), every VPC's bridge + router addresses + dnsmasq + reservations, taps of live instances on
 * their VPC's bridge, Elastic IP addresses on the uplink, the security-group tables; remove VPC
 * networks no row references. Pending VPCs and subnets become available once made.
 *
 * One run at a time per process; a call during a run causes exactly one more run after it (which
 * reads the database again), so no change is missed. A bad row is skipped and logged; a failed
 * step does not stop the others, and the run then throws NetworkConvergeError (the job retries).
 */
export function convergeNetwork(deps: WorkerDeps): Promise<ConvergeReport> {
  return stateOf(deps).converge.run(() => convergeOnce(deps));
}

async function convergeOnce(deps: WorkerDeps): Promise<ConvergeReport> {
  const t0 = performance.now();
  const report: ConvergeReport = {
    vpcs: 0,
    changed: [],
    removed: [],
    elasticIps: { added: [], removed: [], changed: [] },
    skipped: [],
    notes: [],
    ms: 0,
  };
  const failures: string[] = [];
  const step = async (what: string, fn: () => Promise<void>) => {
    try {
      await fn();
    } catch (e) {
      failures.push(`${what}: ${messageOf(e)}`);
    }
  };

  const [vpcRows, eipRows, live] = await Promise.all([
    listVpcsWithSubnets(deps.db),
    listElasticIps(deps.db),
    listLiveInstancePorts(deps.db),
  ]);
  const { vpcs } = buildRulesetModel(deps.settings, vpcRows, eipRows, report.skipped);
  // A VPC left out of the model (bad row) keeps its bridge: only VPCs without a row are removed.
  await step('unused VPC networks', () => removeUnusedVpcNetworks(deps, report.removed));
  await step('ruleset', () => applyVpcRulesetNow(deps, report, vpcRows));
  await forEachLimit(vpcs, 4, (v) =>
    step(v.row.id, async () => {
      const r = await ensureVpc(deps, v.row.id, v.spec, { force: true });
      report.changed.push(...r.changed.map((c) => `${v.row.id}: ${c}`));
      report.notes.push(...r.notes);
      await syncVpcReservations(deps, v.row.id, v.spec);
      report.vpcs++;
      await markAvailable(deps, v.row);
    }),
  );
  await step('taps', () => reattachTaps(deps, vpcs, live, report));
  await step('security groups', async () => void (await applySecurityGroupsNow(deps)));

  report.ms = Math.round(performance.now() - t0);
  report.skipped = [...new Set(report.skipped)];
  logReport(deps, report);
  if (failures.length) throw new NetworkConvergeError(failures, report);
  return report;
}

/**
 * Taps of live instances hang on their VPC's bridge and are up (a bridge re-created behind our
 * back leaves its taps detached). Instances with a job in flight are left to the job.
 */
async function reattachTaps(
  deps: WorkerDeps,
  vpcs: HostVpc[],
  live: InstancePortRow[],
  report: ConvergeReport,
): Promise<void> {
  const { prefix } = deps.settings;
  const links = new Map<string, OwnedLink>(
    (await deps.network.listOwnedLinks(prefix)).map((l) => [l.name, l]),
  );
  const byId = new Map(vpcs.map((v) => [v.row.id, v]));
  for (const i of live) {
    const v = byId.get(i.vpcId);
    const link = links.get(tapName(prefix, i.id));
    if (!v || !link || link.kind !== 'tun' || deps.locks.isHeld(i.id)) continue;
    if (link.master === v.spec.bridge && link.up) continue;
    await deps.network.ensurePort({ bridge: v.spec.bridge, tap: link.name, mac: i.macAddress });
    report.changed.push(`attached ${link.name} to ${v.spec.bridge}`);
  }
}

function logReport(deps: WorkerDeps, r: ConvergeReport): void {
  const e = r.elasticIps;
  const parts = [
    ...r.removed.map((x) => `removed ${x}`),
    ...r.changed,
    ...(e.added.length ? [`Elastic IPs onto the uplink: ${e.added.join(', ')}`] : []),
    ...(e.removed.length ? [`Elastic IPs off the uplink: ${e.removed.join(', ')}`] : []),
    ...(e.changed.length ? [`Elastic IP associations changed: ${e.changed.join(', ')}`] : []),
  ];
  if (parts.length) deps.log(`network: ${parts.join('; ')} (${r.ms} ms)`);
  // Skipped rows and notes repeat on every run: say them when they change.
  const warnings = [...r.skipped.map((s) => `skipped ${s}`), ...new Set(r.notes)].join('; ');
  const state = stateOf(deps);
  if (warnings !== state.lastWarnings) {
    if (warnings) deps.log(`network: ${warnings}`);
    state.lastWarnings = warnings;
  }
}
