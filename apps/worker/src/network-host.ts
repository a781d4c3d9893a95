import { pathExists } from '@minicloud/host';
import { basename, join } from 'node:path';
import {
  defaultBridgeName,
  defaultGateway,
  hostnameFor,
  intToIp,
  ipToInt,
  natTableName,
  parseCidr,
  tapName,
  vpcBridgeName,
  vpcTableName,
} from '@minicloud/domain';
import { UnrecoverableError } from '@minicloud/queue';
import {
  planVpcRuleset,
  type DhcpReservation,
  type ElasticIpModel,
  type EnsureNetworkResult,
  type OwnedLink,
  type VpcModel,
  type VpcNetworkModel,
  type VpcNetworkSpec,
} from '@minicloud/network';
import type { ElasticIp, InternetGateway, PublicIpv4Pool, Subnet, Vpc } from '@prisma/client';
import type { WorkerDeps, WorkerSettings } from './context.js';
import { applySecurityGroupsNow, removeSecurityGroupTables } from './security-group-host.js';

/**
 * The host side of VPCs, subnets, internet gateways and Elastic IPs: what the database says,
 * made real by the VPC network driver. convergeNetwork is the one path that makes the whole host
 * match (network.apply jobs, the reconciler, a terminate that released an Elastic IP); the launch
 * path only makes sure the instance's own VPC exists (ensureInstancePort).
 */

const VPC_ID_RE = /^vpc-[0-9a-f]{17}$/;
/** Serializes "read the Elastic IPs, write them into nft" in this process. */
const ELASTIC_IP_LOCK = 'network:elastic-ips';

type VpcRow = Vpc & { subnets: Subnet[]; gateway?: InternetGateway | null };

/** One VPC as the host sees it: bridge, router address (first host) per subnet, state dir. */
export function vpcNetworkSpec(
  settings: Pick<WorkerSettings, 'prefix' | 'networksDir'>,
  vpc: VpcRow,
): VpcNetworkSpec {
  const subnets = [...vpc.subnets]
    .map((s) => ({ s, n: parseCidr(s.cidrBlock).networkInt }))
    .sort((a, b) => a.n - b.n) // a stable order: dnsmasq's arguments never change by accident
    .map(({ s }) => ({
      subnetId: s.id,
      cidr: s.cidrBlock,
      gatewayIp: defaultGateway(s.cidrBlock),
    }));
  return {
    bridge: vpcBridgeName(settings.prefix, vpc.id),
    cidr: vpc.cidrBlock,
    subnets,
    stateDir: join(settings.networksDir, vpc.id),
  };
}

// ------------------------------------------------------------ per-process state

/** A run of `fn` at a time; a call during a run gets one more run after it (dirty flag). */
class Rerun<T> {
  private running: Promise<T> | null = null;
  private queued: Promise<T> | null = null;

  run(fn: () => Promise<T>): Promise<T> {
    if (!this.running) {
      const p = fn();
      this.running = p;
      const clear = () => {
        if (this.running === p) this.running = null;
      };
      p.then(clear, clear);
      return p;
    }
    // Every call that arrives during a run shares the one run after it: that run reads the
    // database after all of their changes.
    this.queued ??= this.running.then(noop, noop).then(() => {
      this.queued = null;
      return this.run(fn);
    });
    return this.queued;
  }
}

function noop(): void {}

interface HostNetworkState {
  /** Per VPC: the spec last ensured on the host (as JSON) and that ensure. */
  ensured: Map<string, { key: string; done: Promise<EnsureNetworkResult> }>;
  converge: Rerun<ConvergeReport>;
  /** What the last run skipped or noted (logged again only when it changes). */
  lastWarnings: string;
  announcing: Promise<void>;
  /** The pre-VPC network was found absent or removed (this version never makes it again). */
  legacyGone: boolean;
}

// Keyed by the driver: one per process, and what the state describes is what it did.
const states = new WeakMap<object, HostNetworkState>();

function stateOf(deps: WorkerDeps): HostNetworkState {
  let s = states.get(deps.network);
  if (!s) {
    s = {
      ensured: new Map(),
      converge: new Rerun(),
      lastWarnings: '',
      announcing: Promise.resolve(),
      legacyGone: false,
    };
    states.set(deps.network, s);
  }
  return s;
}

/** ensureVpcNetwork, skipped when this process already ensured the same spec (unless forced). */
function ensureVpc(
  deps: WorkerDeps,
  vpcId: string,
  spec: VpcNetworkSpec,
  force: boolean,
): Promise<EnsureNetworkResult> {
  const { ensured } = stateOf(deps);
  const key = JSON.stringify(spec);
  const known = ensured.get(vpcId);
  if (!force && known?.key === key) return known.done;
  const entry = { key, done: deps.network.ensureVpcNetwork(spec) };
  ensured.set(vpcId, entry);
  entry.done.catch(() => {
    if (ensured.get(vpcId) === entry) ensured.delete(vpcId);
  });
  return entry.done;
}

async function loadVpcSpec(deps: WorkerDeps, vpcId: string): Promise<VpcNetworkSpec | null> {
  const vpc = await deps.db.vpc.findUnique({ where: { id: vpcId }, include: { subnets: true } });
  return vpc ? vpcNetworkSpec(deps.settings, vpc) : null;
}

// ------------------------------------------------------------ launch / start path

/**
 * The instance's VPC network exists on the host (bridge, router addresses, dnsmasq). The first
 * time this process sees a VPC (or its subnets changed), the whole host is converged, so the VPC's
 * isolation rules exist before its first guest runs; after that it costs one database read.
 */
export async function ensureInstanceNetwork(
  deps: WorkerDeps,
  vpcId: string,
): Promise<VpcNetworkSpec> {
  const spec = await loadVpcSpec(deps, vpcId);
  if (!spec) throw new UnrecoverableError(`the instance's VPC ${vpcId} does not exist`);
  const known = stateOf(deps).ensured.get(vpcId);
  if (known?.key !== JSON.stringify(spec)) {
    await convergeNetwork(deps).catch((e: unknown) =>
      deps.log(`network: converge before a launch into ${vpcId} failed: ${messageOf(e)}`),
    );
  }
  await ensureVpc(deps, vpcId, spec, false);
  return spec;
}

/**
 * The instance's tap exists on its VPC's bridge. If attaching fails (the bridge vanished behind
 * this process's back), the VPC network is ensured for real and the attach tried once more.
 */
export async function ensureInstancePort(
  deps: WorkerDeps,
  port: { vpcId: string; tap: string; mac: string },
  knownSpec?: VpcNetworkSpec,
): Promise<VpcNetworkSpec> {
  const spec = knownSpec ?? (await ensureInstanceNetwork(deps, port.vpcId));
  const attach = () =>
    deps.network.ensurePort({ bridge: spec.bridge, tap: port.tap, mac: port.mac });
  try {
    await attach();
  } catch (e) {
    deps.log(`network: attaching ${port.tap} failed (${messageOf(e)}); ensuring ${spec.bridge}`);
    await ensureVpc(deps, port.vpcId, spec, true);
    await attach();
  }
  return spec;
}

/**
 * The VPC's dnsmasq serves exactly the addresses of its instances that are not terminated. The
 * database read happens inside the driver's lock, so a slower concurrent sync never applies an
 * older set. Leases outside every subnet (a bad row) are left out and logged.
 */
export async function syncVpcReservations(
  deps: WorkerDeps,
  vpcId: string,
  knownSpec?: VpcNetworkSpec,
): Promise<void> {
  const spec = knownSpec ?? (await loadVpcSpec(deps, vpcId));
  if (!spec || spec.subnets.length === 0) return;
  await deps.network.syncVpcReservations(spec, async () => {
    const leases = await deps.db.addressLease.findMany({
      where: { network: vpcId, instance: { state: { not: 'terminated' } } },
      select: { ip: true, instanceId: true, instance: { select: { macAddress: true } } },
    });
    const out: DhcpReservation[] = [];
    for (const l of leases) {
      if (!isGuestAddress(spec, l.ip)) {
        deps.log(`network: ${l.instanceId}'s address ${l.ip} is in no subnet of ${vpcId}: skipped`);
        continue;
      }
      out.push({
        mac: l.instance.macAddress,
        ip: l.ip,
        hostname: hostnameFor(l.instanceId, l.ip),
      });
    }
    return out;
  });
}

/** A host address of one of the spec's subnets and not its router. */
function isGuestAddress(spec: VpcNetworkSpec, ip: string): boolean {
  let n: number;
  try {
    n = ipToInt(ip);
  } catch {
    return false;
  }
  return spec.subnets.some((s) => {
    const c = parseCidr(s.cidr);
    return n >= c.firstHostInt && n <= c.lastHostInt && s.gatewayIp !== ip;
  });
}

// ------------------------------------------------------------ converge

export interface ConvergeReport {
  /** VPCs whose network was ensured. */
  vpcs: number;
  /** What changed on the host. */
  changed: string[];
  /** VPC networks, the legacy network, Elastic IP addresses removed. */
  removed: string[];
  /** Elastic IPs put on / taken off the uplink, and those whose association changed. */
  elasticIps: { added: string[]; removed: string[]; changed: string[] };
  /** Database rows left out because the host cannot have them (with why). */
  skipped: string[];
  notes: string[];
  ms: number;
}

/** Thrown when some steps failed; the others were done. */
export class NetworkConvergeError extends Error {
  constructor(
    readonly failures: string[],
    readonly report: ConvergeReport,
  ) {
    super(`network converge: ${failures.join('; ')}`);
  }
}

/**
 * Make the host's VPC networks match the database: the VPC nft table (isolation, NAT, Elastic
 * IPs), every VPC's bridge + router addresses + dnsmasq + reservations, taps of live instances on
 * their VPC's bridge, Elastic IP addresses on the uplink; remove VPC networks no row references
 * and the pre-VPC default network. Pending VPCs and subnets become available once made.
 *
 * One run at a time per process; a call during a run causes exactly one more run after it (which
 * reads the database again), so no change is missed. A bad row is skipped and logged; a failed
 * step does not stop the others, and the run then throws NetworkConvergeError (the job retries).
 */
export function convergeNetwork(deps: WorkerDeps): Promise<ConvergeReport> {
  return stateOf(deps).converge.run(() => convergeOnce(deps));
}

interface ConvergeVpc {
  row: VpcRow;
  spec: VpcNetworkSpec;
  model: VpcModel;
}

async function convergeOnce(deps: WorkerDeps): Promise<ConvergeReport> {
  const t0 = performance.now();
  const { db, settings } = deps;
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

  const [vpcRows, eipRows, pools, live] = await Promise.all([
    db.vpc.findMany({ include: { subnets: true, gateway: true }, orderBy: { createdAt: 'asc' } }),
    db.elasticIp.findMany({ orderBy: { publicIp: 'asc' } }),
    db.publicIpv4Pool.findMany(),
    db.instance.findMany({
      where: { state: { not: 'terminated' } },
      select: { id: true, vpcId: true, macAddress: true },
    }),
  ]);
  const vpcs = buildModel(settings, vpcRows, eipRows, report.skipped).vpcs;
  // A VPC left out of the model (bad row) keeps its bridge: removing it would cut its guests off.
  const rowIds = new Set(vpcRows.map((v) => v.id));

  await step('legacy network', () => removeLegacyNetwork(deps, vpcs, live, report));
  await step('unused VPC networks', () => removeUnusedVpcNetworks(deps, rowIds, report.removed));
  // The Elastic IPs are read again under the lock the fast path (applyElasticIpsNow) takes:
  // whichever runs later applies the later association, so a converge that started before an
  // associate never puts the old one back.
  await step('ruleset', () =>
    deps.locks.run(ELASTIC_IP_LOCK, async () => {
      const fresh = await db.elasticIp.findMany({ orderBy: { publicIp: 'asc' } });
      const model = buildModel(settings, vpcRows, fresh, report.skipped);
      await applyRulesetAndAddresses(deps, model.network, pools, report);
    }),
  );
  await forEachLimit(vpcs, 4, (v) =>
    step(v.row.id, async () => {
      const r = await ensureVpc(deps, v.row.id, v.spec, true);
      report.changed.push(...r.changed.map((c) => `${v.row.id}: ${c}`));
      report.notes.push(...r.notes);
      await syncVpcReservations(deps, v.row.id, v.spec);
      report.vpcs++;
      await markAvailable(deps, v);
    }),
  );
  await step('taps', () => moveTaps(deps, vpcs, live, report));
  await step('security groups', async () => void (await applySecurityGroupsNow(deps)));

  report.ms = Math.round(performance.now() - t0);
  report.skipped = [...new Set(report.skipped)];
  logReport(deps, report);
  if (failures.length) throw new NetworkConvergeError(failures, report);
  return report;
}

async function markAvailable(deps: WorkerDeps, v: ConvergeVpc): Promise<void> {
  if (v.row.state === 'pending') {
    await deps.db.vpc.updateMany({
      where: { id: v.row.id, state: 'pending' },
      data: { state: 'available' },
    });
  }
  const pending = v.row.subnets.filter((s) => s.state === 'pending').map((s) => s.id);
  if (pending.length) {
    await deps.db.subnet.updateMany({
      where: { id: { in: pending }, state: 'pending' },
      data: { state: 'available' },
    });
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

// ------------------------------------------------------------ the model

/**
 * The database as the ruleset model. Rows the host cannot have are left out and named in
 * `skipped` (an association whose VPC is gone keeps its address held, unassociated).
 */
function buildModel(
  settings: WorkerSettings,
  vpcRows: VpcRow[],
  eipRows: ElasticIp[],
  skipped: string[],
): { vpcs: ConvergeVpc[]; network: VpcNetworkModel } {
  const candidates: ConvergeVpc[] = [];
  for (const row of vpcRows) {
    try {
      if (!VPC_ID_RE.test(row.id)) throw new Error('not a VPC id');
      const spec = vpcNetworkSpec(settings, row);
      candidates.push({
        row,
        spec,
        model: {
          vpcId: row.id,
          bridge: spec.bridge,
          cidr: spec.cidr,
          subnets: spec.subnets.map((s) => ({
            subnetId: s.subnetId!,
            cidr: s.cidr,
            gatewayIp: s.gatewayIp,
          })),
          internetGateway: Boolean(row.gateway),
        },
      });
    } catch (e) {
      skipped.push(`${row.id}: ${messageOf(e)}`);
    }
  }
  const base = { table: vpcTableName(settings.prefix), uplink: settings.uplink };
  const fits = (vpcs: ConvergeVpc[], elasticIps: ElasticIpModel[]) => {
    try {
      planVpcRuleset({ ...base, vpcs: vpcs.map((v) => v.model), elasticIps });
      return null;
    } catch (e) {
      return messageOf(e);
    }
  };

  const known = new Set(candidates.map((v) => v.row.id));
  const eips: ElasticIpModel[] = eipRows.map((r) => {
    if (r.privateIp && r.vpcId && known.has(r.vpcId))
      return { publicIp: r.publicIp, privateIp: r.privateIp, vpcId: r.vpcId };
    if (r.privateIp || r.vpcId)
      skipped.push(`association of ${r.publicIp} (${r.id}): its VPC ${r.vpcId ?? '?'} is gone`);
    return { publicIp: r.publicIp, privateIp: null };
  });

  // The usual case: everything fits at once.
  if (fits(candidates, eips) === null) {
    return {
      vpcs: candidates,
      network: { ...base, vpcs: candidates.map((v) => v.model), elasticIps: eips },
    };
  }
  // Else keep, one by one, what fits with what was kept before.
  const vpcs: ConvergeVpc[] = [];
  for (const v of candidates) {
    const why = fits([...vpcs, v], []);
    if (why === null) vpcs.push(v);
    else skipped.push(`${v.row.id}: ${why}`);
  }
  const kept: ElasticIpModel[] = [];
  for (const e of eips) {
    const why = fits(vpcs, [...kept, e]);
    if (why === null) {
      kept.push(e);
      continue;
    }
    const bare = { publicIp: e.publicIp, privateIp: null };
    if (e.privateIp !== null && fits(vpcs, [...kept, bare]) === null) {
      kept.push(bare);
      skipped.push(`association ${e.publicIp} -> ${e.privateIp}: ${why}`);
    } else {
      skipped.push(`Elastic IP ${e.publicIp}: ${why}`);
    }
  }
  return { vpcs, network: { ...base, vpcs: vpcs.map((v) => v.model), elasticIps: kept } };
}

// ------------------------------------------------------------ steps

/**
 * The nft table from the model; Elastic IP addresses on the uplink in the order that never leaves
 * a public address answered by the host: released ones off the uplink before the table lets go
 * of them, new ones on only after the table holds them. Addresses whose association changed (or
 * that just arrived) are announced in the background.
 */
async function applyRulesetAndAddresses(
  deps: WorkerDeps,
  model: VpcNetworkModel,
  pools: PublicIpv4Pool[],
  report: ConvergeReport,
): Promise<void> {
  const { network, settings } = deps;
  const uplink =
    settings.uplink !== null && (await linkExists(settings.uplink)) ? settings.uplink : null;
  const spec = { uplink: uplink ?? '', prefix: settings.prefix, pools: poolCidrs(pools) };
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
  const [rows, gateways] = await Promise.all([
    db.elasticIp.findMany({ where: { id: { in: allocationIds } } }),
    db.internetGateway.findMany({ where: { vpcId: { not: null } }, select: { vpcId: true } }),
  ]);
  if (!rows.length) return;
  const withGateway = new Set(gateways.map((g) => g.vpcId));
  const changes = rows.map((r) => ({
    publicIp: r.publicIp,
    privateIp: r.privateIp && r.vpcId && withGateway.has(r.vpcId) ? r.privateIp : null,
  }));
  const result = await deps.network.updateElasticIps(vpcTableName(settings.prefix), changes);
  const uplink =
    settings.uplink !== null && (await linkExists(settings.uplink)) ? settings.uplink : null;
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

/** Bridges, dnsmasq and state directories of VPCs that no row references (all of them: none). */
async function removeUnusedVpcNetworks(
  deps: WorkerDeps,
  vpcIds: ReadonlySet<string>,
  removed: string[],
): Promise<void> {
  const { prefix, networksDir } = deps.settings;
  const owned = await deps.network.listOwnedVpcObjects(prefix, { stateRoot: networksDir });
  const wanted = new Set([...vpcIds].filter((id) => VPC_ID_RE.test(id)));
  const wantedBridges = new Set([...wanted].map((id) => vpcBridgeName(prefix, id)));
  const unused = new Map<string, { stateDir: string; vpcId: string | null }>();
  for (const dir of owned.stateDirs) {
    const id = basename(dir);
    if (!VPC_ID_RE.test(id) || wanted.has(id)) continue;
    unused.set(vpcBridgeName(prefix, id), { stateDir: dir, vpcId: id });
  }
  for (const bridge of [
    ...owned.bridges.map((b) => b.name),
    ...owned.dnsmasq.map((d) => d.bridge),
  ]) {
    // No state directory to go with it: a path that does not exist (the driver skips it).
    if (!wantedBridges.has(bridge) && !unused.has(bridge))
      unused.set(bridge, { stateDir: join(networksDir, `.none-${bridge}`), vpcId: null });
  }
  const { ensured } = stateOf(deps);
  for (const [bridge, u] of unused) {
    const r = await deps.network.removeVpcNetwork({ bridge, stateDir: u.stateDir });
    if (u.vpcId) ensured.delete(u.vpcId);
    if (r.removed.length) removed.push(`${u.vpcId ?? bridge}: ${r.removed.join(', ')}`);
  }
}

/**
 * The pre-VPC default network (bridge <prefix>br0, its dnsmasq, nat table and state dir). Its
 * guests were adopted into the default VPC: their taps move to the VPC's bridge first (a bare
 * bridge if it does not exist yet; the VPC's router address can only go up once br0, which holds
 * the same address, is gone), so they keep their network.
 */
async function removeLegacyNetwork(
  deps: WorkerDeps,
  vpcs: ConvergeVpc[],
  live: LiveInstance[],
  report: ConvergeReport,
): Promise<void> {
  const { network, settings } = deps;
  const state = stateOf(deps);
  if (state.legacyGone) return;
  const bridge = defaultBridgeName(settings.prefix);
  const stateDir = join(settings.networksDir, 'default');
  const natTable = natTableName(settings.prefix);
  const links = await network.listOwnedLinks(settings.prefix);
  const present =
    links.some((l) => l.name === bridge) ||
    (await pathExists(stateDir)) ||
    (await network.listOwnedNatTables(settings.prefix)).includes(natTable);
  if (!present) {
    state.legacyGone = true;
    return;
  }

  const byId = new Map(vpcs.map((v) => [v.row.id, v]));
  const made = new Set(links.filter((l) => l.kind === 'bridge').map((l) => l.name));
  for (const i of live) {
    const tap = tapName(settings.prefix, i.id);
    const v = byId.get(i.vpcId);
    if (!v || !links.some((l) => l.name === tap && l.master === bridge)) continue;
    if (!made.has(v.spec.bridge)) {
      await network.ensureVpcNetwork({ ...v.spec, subnets: [] });
      made.add(v.spec.bridge);
    }
    await network.ensurePort({ bridge: v.spec.bridge, tap, mac: i.macAddress });
    report.changed.push(`moved ${tap} from ${bridge} to ${v.spec.bridge}`);
  }
  const r = await network.removeNetwork({ bridge, stateDir, natTable });
  report.removed.push(`legacy network: ${r.removed.join(', ')}`);
  state.legacyGone = true;
}

type LiveInstance = { id: string; vpcId: string; macAddress: string };

/**
 * Taps of live instances hang on their VPC's bridge and are up (a bridge re-created behind our
 * back leaves its taps detached). Instances with a job in flight are left to the job.
 */
async function moveTaps(
  deps: WorkerDeps,
  vpcs: ConvergeVpc[],
  live: LiveInstance[],
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

// ------------------------------------------------------------ teardown

/**
 * Remove every network object of this installation: VPC bridges (with their taps), dnsmasq and
 * state directories, the VPC nft table, Elastic IP addresses on the uplink, the legacy network.
 */
export async function removeAllNetworks(deps: WorkerDeps): Promise<string[]> {
  const { network, settings } = deps;
  const { prefix, networksDir } = settings;
  const removed: string[] = [];
  const pools = await deps.db.publicIpv4Pool.findMany().catch(() => [] as PublicIpv4Pool[]);
  const uplink =
    settings.uplink !== null && (await linkExists(settings.uplink)) ? settings.uplink : null;
  if (uplink) {
    const spec = { uplink, prefix, pools: poolCidrs(pools) };
    for (const ip of await network.listElasticIpAddresses(spec)) {
      await network.removeElasticIpAddress({ uplink, publicIp: ip });
      removed.push(`Elastic IP ${ip} on ${uplink}`);
    }
  }
  const owned = await network.listOwnedVpcObjects(prefix);
  for (const table of owned.tables) {
    if (await network.removeVpcRuleset(table)) removed.push(`nft table ${table}`);
  }
  await removeUnusedVpcNetworks(deps, new Set(), removed);
  const legacy = await network.removeNetwork({
    bridge: defaultBridgeName(prefix),
    stateDir: join(networksDir, 'default'),
    natTable: natTableName(prefix),
  });
  if (legacy.removed.length) removed.push(`legacy network: ${legacy.removed.join(', ')}`);
  for (const t of await removeSecurityGroupTables(deps)) removed.push(`nft table ${t}`);
  stateOf(deps).ensured.clear();
  return removed;
}

// ------------------------------------------------------------ small helpers

/** A first-last address range as the fewest CIDRs covering exactly it. */
export function rangeToCidrs(firstIp: string, lastIp: string): string[] {
  let n = ipToInt(firstIp);
  const last = ipToInt(lastIp);
  const out: string[] = [];
  while (n <= last) {
    let size = 32;
    // The largest block that starts at n (aligned) and ends at or before last.
    while (size > 0) {
      const block = 2 ** (32 - (size - 1));
      if (n % block !== 0 || n + block - 1 > last) break;
      size--;
    }
    out.push(`${intToIp(n)}/${size}`);
    n += 2 ** (32 - size);
  }
  return out;
}

function poolCidrs(pools: PublicIpv4Pool[]): string[] {
  return pools.flatMap((p) => {
    try {
      return rangeToCidrs(p.firstIp, p.lastIp);
    } catch {
      return [];
    }
  });
}

async function forEachLimit<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
}

function linkExists(name: string): Promise<boolean> {
  return /^[a-zA-Z0-9_.-]{1,15}$/.test(name)
    ? pathExists(join('/sys/class/net', name))
    : Promise.resolve(false);
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
