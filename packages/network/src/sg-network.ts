import { assertNamePrefix } from '@minicloud/domain';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { HostCommandError } from '@minicloud/host';
import { NetworkDriverError } from './errors.js';
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
  type SecurityGroupUpdate,
} from './firewall/index.js';
import { LinuxVpcNetworkDriver } from './vpc-network.js';

/**
 * The host side of security groups (see sg-ruleset.ts for the tables): the whole model applied
 * in one transaction, and small transactions for launches, terminates, group changes and rule
 * changes. A LinuxVpcNetworkDriver (same habits: validated input, argv-only host commands with
 * timeouts, one operation per table pair at a time in this process).
 *
 * The driver remembers the state it last applied per prefix; in a fresh process (or after nft
 * refused an update because the tables were changed behind its back) it reads the state back
 * from nft. When even that fails, the caller applies the whole model (the reconciler's path).
 */

export interface ApplySecurityGroupsResult {
  /** Validating and rendering the model. */
  renderMs: number;
  /** `nft -f` of both tables. */
  applyMs: number;
  /** Size of the script. */
  bytes: number;
  tables: { inet: string; bridge: string };
  counts: { bridges: number; groups: number; rules: number; ports: number; combos: number };
  /** Things the operator should know (e.g. bridge netfilter turned on). */
  notes: string[];
}

export interface SecurityGroupUpdateResult {
  renderMs: number;
  /** `nft -f` of the update (0 when nothing changed). */
  applyMs: number;
  bytes: number;
  changed: boolean;
  /** The state was read back from nft first (fresh process, or a refused update). */
  readBack: boolean;
  summary: SecurityGroupUpdate['summary'];
}

export interface OwnedSecurityGroupTables {
  /** inet tables named <prefix>_sg*. */
  inet: string[];
  /** bridge tables named <prefix>_sg*. */
  bridge: string[];
}

function ms(t0: number): number {
  return Math.round((performance.now() - t0) * 100) / 100;
}

function lockKey(prefix: string): string {
  return `nft:${sgTableName(prefix)}`;
}

export class LinuxSecurityGroupDriver extends LinuxVpcNetworkDriver {
  private readonly sgStates = new Map<string, SecurityGroupState>();

  /**
   * Replace both tables with the ones rendered from the model, in one nft transaction.
   * Established connections survive (conntrack is not touched; `ct state established` accepts
   * them in the new tables). Makes sure bridged IPv4 reaches the inet hooks first.
   */
  async applySecurityGroups(model: SecurityGroupNetworkModel): Promise<ApplySecurityGroupsResult> {
    const t0 = performance.now();
    const plan = planSecurityGroups(model);
    const script = renderSecurityGroupPlan(plan);
    const renderMs = ms(t0);
    const notes = await this.ensureBridgeNetfilter();
    return this.locks.run(lockKey(plan.prefix), async () => {
      const t1 = performance.now();
      try {
        await this.exec('nft', ['-f', '-'], script);
      } catch (e) {
        this.sgStates.delete(plan.prefix);
        throw new NetworkDriverError(
          'NetworkHostError',
          `nft refused the security group tables of ${plan.prefix}: ${String(e)}`,
          e,
        );
      }
      const applyMs = ms(t1);
      this.sgStates.set(plan.prefix, securityGroupStateFromPlan(plan));
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
   * Apply changes as one small transaction (set/map elements, a group's chains flushed and
   * refilled, combination chains added or dropped). The tables must exist (applySecurityGroups
   * first). Validation errors (SecurityGroupValidationError) leave the host unchanged.
   */
  async updateSecurityGroups(
    prefix: string,
    changes: SecurityGroupChanges,
  ): Promise<SecurityGroupUpdateResult> {
    assertNamePrefix(prefix);
    return this.locks.run(lockKey(prefix), async () => {
      let readBack = false;
      for (let attempt = 1; ; attempt++) {
        let current = this.sgStates.get(prefix);
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
        const renderMs = ms(t0);
        const result = {
          renderMs,
          applyMs: 0,
          bytes: Buffer.byteLength(update.script),
          changed: update.script !== '',
          readBack,
          summary: update.summary,
        };
        if (!update.script) {
          this.sgStates.set(prefix, update.next);
          return result;
        }
        const t1 = performance.now();
        try {
          await this.exec('nft', ['-f', '-'], update.script);
        } catch (e) {
          // Our picture of the tables was stale (another process, a manual change): re-read once.
          this.sgStates.delete(prefix);
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
        this.sgStates.set(prefix, update.next);
        return { ...result, applyMs: ms(t1) };
      }
    });
  }

  /** Launch / move (upsert) and terminate (remove) ports: element updates only. */
  updatePorts(
    prefix: string,
    ports: { upsert?: readonly SecurityGroupPortModel[]; remove?: readonly string[] },
  ): Promise<SecurityGroupUpdateResult> {
    return this.updateSecurityGroups(prefix, {
      ...(ports.upsert ? { ports: ports.upsert } : {}),
      ...(ports.remove ? { removePorts: ports.remove } : {}),
    });
  }

  /** "Change an instance's groups": each port's map elements and the group sets. */
  updateMemberships(
    prefix: string,
    memberships: readonly SecurityGroupMembershipChange[],
  ): Promise<SecurityGroupUpdateResult> {
    return this.updateSecurityGroups(prefix, { memberships });
  }

  /** Create groups, or replace all rules of existing ones (their chains flushed and refilled). */
  replaceGroupRules(
    prefix: string,
    groups: readonly SecurityGroupModel[],
  ): Promise<SecurityGroupUpdateResult> {
    return this.updateSecurityGroups(prefix, { groups });
  }

  /** Delete both tables. Returns the tables that existed. */
  async removeSecurityGroupTables(prefix: string): Promise<string[]> {
    assertNamePrefix(prefix);
    return this.locks.run(lockKey(prefix), async () => {
      this.sgStates.delete(prefix);
      const existed: string[] = [];
      if ((await this.listTableJson('inet', sgTableName(prefix))) !== null)
        existed.push(`inet ${sgTableName(prefix)}`);
      if ((await this.listTableJson('bridge', sgBridgeTableName(prefix))) !== null)
        existed.push(`bridge ${sgBridgeTableName(prefix)}`);
      if (existed.length) await this.exec('nft', ['-f', '-'], renderSecurityGroupRemoval(prefix));
      return existed;
    });
  }

  /** The state as nft has it (null when the tables do not exist or are not ours). */
  async readSecurityGroupState(prefix: string): Promise<SecurityGroupState | null> {
    assertNamePrefix(prefix);
    return this.locks.run(lockKey(prefix), () => this.readState(prefix));
  }

  /** The state this process last applied (null when it has none). */
  cachedSecurityGroupState(prefix: string): SecurityGroupState | null {
    return this.sgStates.get(assertNamePrefix(prefix)) ?? null;
  }

  /** What the reconciler compares with the database: our inet and bridge tables. */
  async listOwnedSecurityGroupTables(prefix: string): Promise<OwnedSecurityGroupTables> {
    assertNamePrefix(prefix);
    const names = async (family: 'inet' | 'bridge') => {
      const r = await this.exec('nft', ['-j', 'list', 'tables', family]);
      const items =
        (JSON.parse(r.stdout) as { nftables?: { table?: { name?: string } }[] }).nftables ?? [];
      return items
        .flatMap((i) => (i.table?.name?.startsWith(`${prefix}_sg`) ? [i.table.name] : []))
        .sort();
    };
    return { inet: await names('inet'), bridge: await names('bridge') };
  }

  // ------------------------------------------------------------ internals

  private async readState(prefix: string): Promise<SecurityGroupState | null> {
    const inet = await this.listTableJson('inet', sgTableName(prefix));
    const bridge = await this.listTableJson('bridge', sgBridgeTableName(prefix));
    if (inet === null || bridge === null) return null;
    return parseSecurityGroupState(prefix, inet, bridge);
  }

  private async listTableJson(family: 'inet' | 'bridge', table: string): Promise<string | null> {
    const r = await this.run('nft', ['-j', 'list', 'table', family, table], {
      timeoutMs: this.timeoutMs,
      okExitCodes: [1],
    });
    if (r.exitCode === 0) return r.stdout;
    if (/No such file or directory/i.test(r.stderr)) return null;
    throw new NetworkDriverError(
      'NetworkHostError',
      `nft list table ${family} ${table} failed: ${r.stderr.trim()}`,
    );
  }

  /**
   * Security groups see traffic between guests on one bridge only when bridged IPv4 passes the
   * inet hooks (br_netfilter, net.bridge.bridge-nf-call-iptables = 1). Turns it on when it is
   * off (a note says so: it is host-wide); refuses to go on without it, since the groups would
   * silently not apply inside a subnet.
   */
  private async ensureBridgeNetfilter(): Promise<string[]> {
    const path = join(this.procRoot, 'sys/net/bridge/bridge-nf-call-iptables');
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
        await this.exec('modprobe', ['br_netfilter']);
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
