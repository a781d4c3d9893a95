import { Batcher, defaultGateway, tapName, vpcBridgeName } from '@minicloud/domain';
import {
  findSecurityGroupPorts,
  loadSecurityGroupRows,
  type SecurityGroupPortRow,
  type SecurityGroupRows,
} from '@minicloud/db';
import type {
  SecurityGroupNetworkModel,
  SecurityGroupPortModel,
  SecurityGroupRuleModel,
} from '@minicloud/network';
import type { SecurityGroupRule } from '@prisma/client';
import type { WorkerDeps, WorkerSettings } from '../context.js';

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

function portModel(
  prefix: string,
  i: SecurityGroupPortRow,
  knownVpcs: ReadonlySet<string>,
): SecurityGroupPortModel | null {
  if (!i.privateIp || !knownVpcs.has(i.vpcId) || i.securityGroups.length === 0) return null;
  return {
    tap: tapName(prefix, i.id),
    bridge: vpcBridgeName(prefix, i.vpcId),
    mac: i.macAddress,
    ip: i.privateIp,
    groupIds: [...i.securityGroups].sort((a, b) => a.position - b.position).map((g) => g.groupId),
  };
}

/**
 * The rows as the firewall model (pure). Instances without an address, VPC or group are left
 * out (nothing gets through their taps) and named in `skipped`.
 */
export function securityGroupModel(
  settings: Pick<WorkerSettings, 'prefix'>,
  rows: SecurityGroupRows,
  skipped: string[] = [],
): SecurityGroupNetworkModel {
  const { prefix } = settings;
  const knownVpcs = new Set(rows.vpcs.map((v) => v.id));
  const ports = rows.instances.flatMap((i) => {
    const p = portModel(prefix, i, knownVpcs);
    if (!p) skipped.push(i.id);
    return p ? [p] : [];
  });
  return {
    prefix,
    bridges: rows.vpcs.map((v) => ({
      bridge: vpcBridgeName(prefix, v.id),
      vpcId: v.id,
      routerIps: v.subnets.map((s) => defaultGateway(s.cidrBlock)),
    })),
    groups: rows.groups
      .filter((g) => knownVpcs.has(g.vpcId))
      .map((g) => ({
        groupId: g.id,
        vpcId: g.vpcId,
        ingress: rows.rules.filter((r) => r.groupId === g.id && !r.isEgress).map(ruleModel),
        egress: rows.rules.filter((r) => r.groupId === g.id && r.isEgress).map(ruleModel),
      })),
    ports,
  };
}

/** The whole security-group model of this installation, from the database. */
export async function loadSecurityGroupModel(deps: WorkerDeps): Promise<SecurityGroupNetworkModel> {
  const skipped: string[] = [];
  const model = securityGroupModel(deps.settings, await loadSecurityGroupRows(deps.db), skipped);
  if (skipped.length)
    deps.log(
      `security groups: instances without address, VPC or group left out: ${skipped.join(', ')}`,
    );
  return model;
}

/** Replace both tables with the database's model (established connections survive). */
export function applySecurityGroupsNow(deps: WorkerDeps) {
  return deps.locks.run(LOCK, async () => {
    const result = await deps.network.applySecurityGroups(await loadSecurityGroupModel(deps));
    for (const n of result.notes) deps.log(`security groups: ${n}`);
    return result;
  });
}

const portUpserts = new WeakMap<object, Batcher<string, void>>();

/**
 * The instance's port with its groups, before its guest starts (a tap the tables do not know
 * gets nothing through). One small element update for all launches in flight; the whole model
 * when the tables do not know a port's bridge or groups yet (or do not exist).
 */
export function upsertSecurityPort(deps: WorkerDeps, instanceId: string): Promise<void> {
  let upserts = portUpserts.get(deps.network);
  if (!upserts) {
    upserts = new Batcher<string, void>(async (ids) => {
      await upsertPorts(deps, [...new Set(ids)]);
      return ids.map(() => ({ status: 'fulfilled', value: undefined }));
    });
    portUpserts.set(deps.network, upserts);
  }
  return upserts.add(instanceId);
}

async function upsertPorts(deps: WorkerDeps, instanceIds: string[]): Promise<void> {
  const { prefix } = deps.settings;
  const fallback = await deps.locks.run(LOCK, async () => {
    const rows = await findSecurityGroupPorts(deps.db, instanceIds);
    const ports = rows.flatMap((i) => {
      const port = portModel(prefix, i, new Set([i.vpcId]));
      // Without a group nothing gets through its tap: the safe side.
      if (!port) deps.log(`security groups: ${i.id} has no address or group; its port stays shut`);
      return port ? [port] : [];
    });
    if (!ports.length) return false;
    try {
      await deps.network.updateSecurityGroups(prefix, { ports });
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
