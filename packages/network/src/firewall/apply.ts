import { assertNamePrefix, KeyedLock } from '@minicloud/domain';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { HostCommandError } from '@minicloud/host';
import type {
  ApplySecurityGroupsResult,
  OwnedSecurityGroupTables,
  SecurityGroupTables,
  SecurityGroupUpdateResult,
} from '../driver.js';
import { NetworkDriverError } from '../errors.js';
import { msSince, type LinuxHost } from '../host/linux-host.js';
import type { Nft } from '../host/nft.js';
import {
  parseSecurityGroupState,
  planSecurityGroups,
  planSecurityGroupUpdate,
  renderSecurityGroupPlan,
  renderSecurityGroupRemoval,
  securityGroupStateFromPlan,
  sgBridgeTableName,
  sgTableName,
  type SecurityGroupChanges,
  type SecurityGroupMembershipChange,
  type SecurityGroupModel,
  type SecurityGroupNetworkModel,
  type SecurityGroupPortModel,
  type SecurityGroupState,
} from './index.js';

/**
 * The host side of security groups (the tables themselves are rendered by the pure firewall
 * code): the whole model applied in one transaction, and small transactions for launches,
 * terminates, group changes and rule changes. One operation per table pair at a time.
 *
 * It remembers the state it last applied per prefix; in a fresh process (or after nft refused an
 * update because the tables were changed behind its back) it reads the state back from nft. When
 * even that fails, the caller applies the whole model (the reconciler's path).
 */
export class FirewallTables implements SecurityGroupTables {
  private readonly locks = new KeyedLock();
  private readonly states = new Map<string, SecurityGroupState>();

  constructor(
    private readonly host: LinuxHost,
    private readonly nft: Nft,
  ) {}

  /**
   * Established connections survive (conntrack is not touched; `ct state established` accepts
   * them in the new tables). Makes sure bridged IPv4 reaches the inet hooks first.
   */
  async applySecurityGroups(model: SecurityGroupNetworkModel): Promise<ApplySecurityGroupsResult> {
    const t0 = performance.now();
    const plan = planSecurityGroups(model);
    const script = renderSecurityGroupPlan(plan);
    const renderMs = msSince(t0);
    const notes = await this.ensureBridgeNetfilter();
    return this.locks.run(lockKey(plan.prefix), async () => {
      const t1 = performance.now();
      try {
        await this.nft.apply(script);
      } catch (e) {
        this.states.delete(plan.prefix);
        throw new NetworkDriverError(
          'NetworkHostError',
          `nft refused the security group tables of ${plan.prefix}: ${String(e)}`,
          e,
        );
      }
      const applyMs = msSince(t1);
      this.states.set(plan.prefix, securityGroupStateFromPlan(plan));
      return {
        renderMs,
        applyMs,
        bytes: Buffer.byteLength(script),
        tables: { inet: plan.inetTable, bridge: plan.bridgeTable },
        counts: {
          bridges: plan.bridges.length,
          groups: plan.groups.length,
          rules: plan.ruleCount,
          ports: plan.ports.length,
          combos: plan.combos.length,
        },
        notes,
      };
    });
  }

  /**
   * Set/map elements, a group's chains flushed and refilled, combination chains added or
   * dropped. Validation errors (SecurityGroupValidationError) leave the host unchanged.
   */
  async updateSecurityGroups(
    prefix: string,
    changes: SecurityGroupChanges,
  ): Promise<SecurityGroupUpdateResult> {
    assertNamePrefix(prefix);
    return this.locks.run(lockKey(prefix), async () => {
      let readBack = false;
      for (let attempt = 1; ; attempt++) {
        let current = this.states.get(prefix);
        if (!current) {
          const read = await this.readState(prefix);
          if (!read) {
            throw new NetworkDriverError(
              'NetworkHostError',
              `the security group tables of ${prefix} do not exist: apply the whole model first`,
            );
          }
          current = read;
          readBack = true;
        }
        const t0 = performance.now();
        const update = planSecurityGroupUpdate(current, changes);
        const renderMs = msSince(t0);
        const result = {
          renderMs,
          applyMs: 0,
          bytes: Buffer.byteLength(update.script),
          changed: update.script !== '',
          readBack,
          summary: update.summary,
        };
        if (!update.script) {
          this.states.set(prefix, update.next);
          return result;
        }
        const t1 = performance.now();
        try {
          await this.nft.apply(update.script);
        } catch (e) {
          // Our picture of the tables was stale (another process, a manual change): re-read once.
          this.states.delete(prefix);
          if (attempt >= 2 || !(e instanceof HostCommandError)) {
            throw new NetworkDriverError(
              'NetworkHostError',
              `nft refused the security group update of ${prefix} (apply the whole model to ` +
                `repair the tables): ${String(e)}`,
              e,
            );
          }
          continue;
        }
        this.states.set(prefix, update.next);
        return { ...result, applyMs: msSince(t1) };
      }
    });
  }

  updatePorts(
    prefix: string,
    ports: { upsert?: readonly SecurityGroupPortModel[]; remove?: readonly string[] },
  ): Promise<SecurityGroupUpdateResult> {
    return this.updateSecurityGroups(prefix, {
      ...(ports.upsert ? { ports: ports.upsert } : {}),
      ...(ports.remove ? { removePorts: ports.remove } : {}),
    });
  }

  updateMemberships(
    prefix: string,
    memberships: readonly SecurityGroupMembershipChange[],
  ): Promise<SecurityGroupUpdateResult> {
    return this.updateSecurityGroups(prefix, { memberships });
  }

  replaceGroupRules(
    prefix: string,
    groups: readonly SecurityGroupModel[],
  ): Promise<SecurityGroupUpdateResult> {
    return this.updateSecurityGroups(prefix, { groups });
  }

  async removeSecurityGroupTables(prefix: string): Promise<string[]> {
    assertNamePrefix(prefix);
    return this.locks.run(lockKey(prefix), async () => {
      this.states.delete(prefix);
      const existed: string[] = [];
      if ((await this.nft.listTable('inet', sgTableName(prefix))) !== null)
        existed.push(`inet ${sgTableName(prefix)}`);
      if ((await this.nft.listTable('bridge', sgBridgeTableName(prefix))) !== null)
        existed.push(`bridge ${sgBridgeTableName(prefix)}`);
      if (existed.length) await this.nft.apply(renderSecurityGroupRemoval(prefix));
      return existed;
    });
  }

  async readSecurityGroupState(prefix: string): Promise<SecurityGroupState | null> {
    assertNamePrefix(prefix);
    return this.locks.run(lockKey(prefix), () => this.readState(prefix));
  }

  cachedSecurityGroupState(prefix: string): SecurityGroupState | null {
    return this.states.get(assertNamePrefix(prefix)) ?? null;
  }

  /** Forget what this process applied (the tables were removed behind this part's back). */
  forget(): void {
    this.states.clear();
  }

  /** Our inet and bridge tables (<prefix>_sg*). */
  async listOwned(prefix: string): Promise<OwnedSecurityGroupTables> {
    assertNamePrefix(prefix);
    return {
      inet: await this.nft.tableNames('inet', `${prefix}_sg`),
      bridge: await this.nft.tableNames('bridge', `${prefix}_sg`),
    };
  }

  private async readState(prefix: string): Promise<SecurityGroupState | null> {
    const inet = await this.nft.listTable('inet', sgTableName(prefix));
    const bridge = await this.nft.listTable('bridge', sgBridgeTableName(prefix));
    if (inet === null || bridge === null) return null;
    return parseSecurityGroupState(prefix, inet, bridge);
  }

  /**
   * Security groups see traffic between guests on one bridge only when bridged IPv4 passes the
   * inet hooks (br_netfilter, net.bridge.bridge-nf-call-iptables = 1). Turns it on when it is
   * off (a note says so: it is host-wide); refuses to go on without it, since the groups would
   * silently not apply inside a subnet.
   */
  private async ensureBridgeNetfilter(): Promise<string[]> {
    const path = join(this.host.procRoot, 'sys/net/bridge/bridge-nf-call-iptables');
    const read = async () => {
      try {
        return (await readFile(path, 'utf8')).trim();
      } catch {
        return null;
      }
    };
    let value = await read();
    const notes: string[] = [];
    if (value === null) {
      try {
        await this.host.exec('modprobe', ['br_netfilter']);
        notes.push('loaded br_netfilter');
      } catch {
        /* reported below */
      }
      value = await read();
      if (value === null) {
        throw new NetworkDriverError(
          'NetworkHostError',
          `${path} does not exist (br_netfilter missing): security groups cannot see traffic ` +
            'inside a bridge',
        );
      }
    }
    if (value !== '1') {
      try {
        await writeFile(path, '1\n');
      } catch (e) {
        throw new NetworkDriverError('NetworkHostError', `cannot write ${path}: ${String(e)}`, e);
      }
      notes.push(
        `enabled net.bridge.bridge-nf-call-iptables (was ${value}): bridged IPv4 now passes ` +
          'the inet/ip hooks host-wide',
      );
    }
    return notes;
  }
}

function lockKey(prefix: string): string {
  return `nft:${sgTableName(prefix)}`;
}
