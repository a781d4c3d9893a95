import { assertNftTableName, KeyedLock } from '@minicloud/domain';
import { HostCommandError } from '@minicloud/host';
import type {
  ApplyVpcRulesetOptions,
  ApplyVpcRulesetResult,
  ElasticIpUpdateResult,
  VpcRuleset,
} from '../driver.js';
import { NetworkDriverError } from '../errors.js';
import { msSince, type LinuxHost } from '../host/linux-host.js';
import type { Nft } from '../host/nft.js';
import type { Conntrack } from './conntrack.js';
import {
  eipMapsFromPlan,
  parseEipMaps,
  planEipMapUpdate,
  type EipMapsState,
  type ElasticIpChange,
} from '../vpc-ruleset/index.js';
import {
  planVpcRuleset,
  renderVpcRulesetPlan,
  renderVpcRulesetRemoval,
  type VpcNetworkModel,
} from '../vpc-ruleset/index.js';

/**
 * The VPC table on the host: the whole table replaced in one transaction, and Elastic IP changes
 * as set-element updates. It remembers the Elastic IP sets it last applied per table; in a fresh
 * process (or after nft refused an update because the table changed behind its back) it reads
 * them back from nft. One operation per table at a time.
 */
export class VpcTable implements VpcRuleset {
  private readonly locks = new KeyedLock();
  /** Per table: the Elastic IP sets as last applied by this process (read from nft on a miss). */
  private readonly eipState = new Map<string, EipMapsState>();

  constructor(
    private readonly host: LinuxHost,
    private readonly nft: Nft,
    private readonly conntrack: Conntrack,
  ) {}

  async applyVpcRuleset(
    model: VpcNetworkModel,
    options: ApplyVpcRulesetOptions = {},
  ): Promise<ApplyVpcRulesetResult> {
    const t0 = performance.now();
    const plan = planVpcRuleset(model);
    const script = renderVpcRulesetPlan(plan);
    const renderMs = msSince(t0);
    const notes = [...plan.notes];
    if (plan.uplink !== null && !(await this.host.linkExists(plan.uplink)))
      notes.push(`uplink ${plan.uplink} does not exist (yet): no outside traffic until it does`);
    return this.locks.run(lockKey(plan.table), async () => {
      const flush = options.flushConntrack ?? true;
      const before = flush
        ? (this.eipState.get(plan.table) ?? (await this.readEipState(plan.table)))
        : null;
      const t1 = performance.now();
      try {
        await this.nft.apply(script);
      } catch (e) {
        this.eipState.delete(plan.table);
        throw new NetworkDriverError(
          'NetworkHostError',
          `nft refused the VPC ruleset of ${plan.table}: ${String(e)}`,
          e,
        );
      }
      const applyMs = msSince(t1);
      const next = eipMapsFromPlan(plan);
      this.eipState.set(plan.table, next);
      let changedElasticIps: string[] = [];
      let conntrackMs = 0;
      if (before) {
        changedElasticIps = [...new Set([...before.dnat.keys(), ...next.dnat.keys()])]
          .filter((pub) => before.dnat.get(pub) !== next.dnat.get(pub))
          .sort();
        const t2 = performance.now();
        const f = await this.conntrack.flush(changedElasticIps);
        conntrackMs = msSince(t2);
        notes.push(...f.notes);
      }
      return {
        renderMs,
        applyMs,
        conntrackMs,
        bytes: Buffer.byteLength(script),
        changedElasticIps,
        notes,
      };
    });
  }

  async removeVpcRuleset(table: string): Promise<boolean> {
    assertNftTableName(table);
    return this.locks.run(lockKey(table), async () => {
      this.eipState.delete(table);
      const existed = (await this.nft.listTable('ip', table)) !== null;
      if (existed) await this.nft.apply(renderVpcRulesetRemoval(table));
      return existed;
    });
  }

  async readElasticIpState(table: string): Promise<EipMapsState | null> {
    assertNftTableName(table);
    return this.readEipState(table);
  }

  /**
   * Note: the incremental path does not look at the VPC's internet gateway; the forward chain
   * still refuses traffic into a VPC without one.
   */
  async updateElasticIps(
    table: string,
    changes: readonly ElasticIpChange[],
    options: ApplyVpcRulesetOptions = {},
  ): Promise<ElasticIpUpdateResult> {
    assertNftTableName(table);
    // Validate before taking the lock (throws on bad input).
    planEipMapUpdate(table, { held: new Set(), dnat: new Map() }, changes);
    return this.locks.run(lockKey(table), async () => {
      let applyMs = 0;
      let plan: ReturnType<typeof planEipMapUpdate> | null = null;
      for (let attempt = 1; ; attempt++) {
        let current = this.eipState.get(table);
        if (!current) {
          const read = await this.readEipState(table);
          if (!read) {
            throw new NetworkDriverError(
              'NetworkHostError',
              `nft table ${table} has no Elastic IP maps: apply the whole VPC ruleset first`,
            );
          }
          current = read;
        }
        plan = planEipMapUpdate(table, current, changes);
        if (!plan.script) break;
        const t = performance.now();
        try {
          await this.nft.apply(plan.script);
          applyMs = msSince(t);
          break;
        } catch (e) {
          // Our picture of the table was stale (another process, a manual change): re-read once.
          this.eipState.delete(table);
          if (attempt >= 2 || !(e instanceof HostCommandError)) {
            throw new NetworkDriverError(
              'NetworkHostError',
              `nft refused the Elastic IP update of ${table}: ${String(e)}`,
              e,
            );
          }
        }
      }
      this.eipState.set(table, plan.next);
      const t2 = performance.now();
      const f =
        (options.flushConntrack ?? true)
          ? await this.conntrack.flush(plan.changed)
          : { deleted: 0, notes: [] };
      return {
        changed: plan.changed,
        applyMs,
        conntrackMs: plan.changed.length ? msSince(t2) : 0,
        flushedConnections: f.deleted,
        notes: f.notes,
      };
    });
  }

  /** Forget what this process applied (the tables were removed behind this part's back). */
  forget(): void {
    this.eipState.clear();
  }

  /** Names of the VPC tables (family ip, <prefix>_vpc*). */
  listOwned(prefix: string): Promise<string[]> {
    return this.nft.tableNames('ip', `${prefix}_vpc`);
  }

  private async readEipState(table: string): Promise<EipMapsState | null> {
    const json = await this.nft.listTable('ip', table);
    return json === null ? null : parseEipMaps(json);
  }
}

function lockKey(table: string): string {
  return `nft:${table}`;
}
