import { defaultGateway, tapName, vpcBridgeName } from '@minicloud/domain';
import {
  type SecurityGroupNetworkModel,
  type SecurityGroupPortModel,
  type SecurityGroupRuleModel,
} from '@minicloud/network';
import type { SecurityGroupRule } from '@prisma/client';
import type { WorkerDeps } from './context.js';

/**
 * Security groups on the host: the database as the model of the `<prefix>_sg` (inet) and
 * `<prefix>_sgb` (bridge) tables. The whole model is applied by the reconciler and after rule or
 * membership changes; a launch and a terminate are small element updates of one port. Every
 * "read the database, write nft" runs under one lock in this process, so the later read wins.
 */

const LOCK = 'network:security-groups';

function ruleModel(r: SecurityGroupRule): SecurityGroupRuleModel {
  return {
    ruleId: r.id,
    ipProtocol: r.ipProtocol as SecurityGroupRuleModel['ipProtocol'],
    fromPort: r.fromPort,
    toPort: r.toPort,
    cidr: r.cidrIpv4,
    referencedGroupId: r.referencedGroupId,
  };
}

type InstanceRow = {
  id: string;
  vpcId: string;
  macAddress: string;
  privateIp: string | null;
  securityGroups: { groupId: string; position: number }[];
};

function portModel(
  deps: WorkerDeps,
  i: InstanceRow,
  knownVpcs: ReadonlySet<string>,
): SecurityGroupPortModel | null {
  if (!i.privateIp || !knownVpcs.has(i.vpcId) || i.securityGroups.length === 0) return null;
  return {
    tap: tapName(deps.settings.prefix, i.id),
    bridge: vpcBridgeName(deps.settings.prefix, i.vpcId),
    mac: i.macAddress,
    ip: i.privateIp,
    groupIds: [...i.securityGroups].sort((a, b) => a.position - b.position).map((g) => g.groupId),
  };
}

const instanceSelect = {
  id: true,
  vpcId: true,
  macAddress: true,
  privateIp: true,
  securityGroups: { select: { groupId: true, position: true } },
} as const;

/** The whole security-group model of this installation, from the database. */
export async function loadSecurityGroupModel(deps: WorkerDeps): Promise<SecurityGroupNetworkModel> {
  const { db, settings } = deps;
  const [vpcs, groups, rules, instances] = await Promise.all([
    db.vpc.findMany({ include: { subnets: { select: { cidrBlock: true } } } }),
    db.securityGroup.findMany(),
    db.securityGroupRule.findMany({ orderBy: { createdAt: 'asc' } }),
    db.instance.findMany({ where: { state: { not: 'terminated' } }, select: instanceSelect }),
  ]);
  const knownVpcs = new Set(vpcs.map((v) => v.id));
  const skipped: string[] = [];
  const ports = instances.flatMap((i) => {
    const p = portModel(deps, i, knownVpcs);
    if (!p) skipped.push(i.id);
    return p ? [p] : [];
  });
  if (skipped.length)
    deps.log(
      `security groups: instances without address, VPC or group left out: ${skipped.join(', ')}`,
    );
  return {
    prefix: settings.prefix,
    bridges: vpcs.map((v) => ({
      bridge: vpcBridgeName(settings.prefix, v.id),
      vpcId: v.id,
      routerIps: v.subnets.map((s) => defaultGateway(s.cidrBlock)),
    })),
    groups: groups
      .filter((g) => knownVpcs.has(g.vpcId))
      .map((g) => ({
        groupId: g.id,
        vpcId: g.vpcId,
        ingress: rules.filter((r) => r.groupId === g.id && !r.isEgress).map(ruleModel),
        egress: rules.filter((r) => r.groupId === g.id && r.isEgress).map(ruleModel),
      })),
    ports,
  };
}

/** Replace both tables with the database's model (established connections survive). */
export function applySecurityGroupsNow(deps: WorkerDeps) {
  return deps.locks.run(LOCK, async () => {
    const result = await deps.network.applySecurityGroups(await loadSecurityGroupModel(deps));
    for (const n of result.notes) deps.log(`security groups: ${n}`);
    return result;
  });
}

/**
 * Calls that arrive while a flush runs are served together by the next flush: many launches at
 * once become one nft transaction instead of one each.
 */
function coalescing(flush: (keys: string[]) => Promise<void>): (key: string) => Promise<void> {
  let queue: { key: string; resolve: () => void; reject: (e: unknown) => void }[] = [];
  let running = false;
  const pump = async () => {
    running = true;
    while (queue.length) {
      const batch = queue;
      queue = [];
      try {
        await flush([...new Set(batch.map((b) => b.key))]);
        for (const b of batch) b.resolve();
      } catch (e) {
        for (const b of batch) b.reject(e);
      }
    }
    running = false;
  };
  return (key) =>
    new Promise<void>((resolve, reject) => {
      queue.push({ key, resolve, reject });
      if (!running) void pump();
    });
}

const portUpserts = new WeakMap<object, (instanceId: string) => Promise<void>>();

/**
 * The instance's port with its groups, before its guest starts (a tap the tables do not know
 * gets nothing through). One small element update for all launches in flight; the whole model
 * when the tables do not know a port's bridge or groups yet (or do not exist).
 */
export function upsertSecurityPort(deps: WorkerDeps, instanceId: string): Promise<void> {
  let upsert = portUpserts.get(deps.network);
  if (!upsert) {
    upsert = coalescing((ids) => upsertPorts(deps, ids));
    portUpserts.set(deps.network, upsert);
  }
  return upsert(instanceId);
}

async function upsertPorts(deps: WorkerDeps, instanceIds: string[]): Promise<void> {
  const fallback = await deps.locks.run(LOCK, async () => {
    const rows = await deps.db.instance.findMany({
      where: { id: { in: instanceIds } },
      select: instanceSelect,
    });
    const ports = rows.flatMap((i) => {
      const port = portModel(deps, i, new Set([i.vpcId]));
      // Without a group nothing gets through its tap: the safe side.
      if (!port) deps.log(`security groups: ${i.id} has no address or group; its port stays shut`);
      return port ? [port] : [];
    });
    if (!ports.length) return false;
    try {
      await deps.network.updateSecurityGroups(deps.settings.prefix, { ports });
      return false;
    } catch {
      return true;
    }
  });
  if (fallback) await applySecurityGroupsNow(deps);
}

/** Forget a terminated instance's port (the next whole apply would, too). */
export async function removeSecurityPort(deps: WorkerDeps, instanceId: string): Promise<void> {
  await deps.locks.run(LOCK, async () => {
    try {
      await deps.network.updateSecurityGroups(deps.settings.prefix, {
        removePorts: [tapName(deps.settings.prefix, instanceId)],
      });
    } catch (e) {
      deps.log(`security groups: removing the port of ${instanceId}: ${(e as Error).message}`);
    }
  });
}

export function removeSecurityGroupTables(deps: WorkerDeps): Promise<string[]> {
  return deps.network.removeSecurityGroupTables(deps.settings.prefix);
}
