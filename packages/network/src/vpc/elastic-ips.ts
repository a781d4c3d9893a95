import { assertIpv4 } from '@minicloud/domain';
import type { ElasticIpAddressSpec, ElasticIpUpdateResult, VpcRuleset } from '../driver.js';
import type { UplinkAddresses } from './uplink-addresses.js';

/**
 * The life cycle of an Elastic IP over the VPC table and the uplink. Each step is idempotent, and
 * the order keeps a held public address from ever being answered by host services:
 *   allocate     into eip_held (input drop), then onto the uplink (then announced)
 *   associate    map elements, then conntrack entries of the address flushed
 *   move         associate with another private address (one transaction)
 *   disassociate out of the maps
 *   release      out of the maps and eip_held, then off the uplink
 * The whole state is also in the model given to applyVpcRuleset (the reconciler's path).
 */
export class ElasticIpLifecycle {
  constructor(
    private readonly table: VpcRuleset,
    private readonly addresses: UplinkAddresses,
  ) {}

  /** Held in the table first, then onto the uplink; an existing association is kept (a retry). */
  async allocate(
    spec: ElasticIpAddressSpec & { table: string; announce?: boolean },
  ): Promise<{ addressAdded: boolean; announced: boolean; notes: string[] }> {
    const r = await this.table.updateElasticIps(spec.table, [{ publicIp: spec.publicIp }]);
    const addressAdded = await this.addresses.ensure(spec);
    const notes = [...r.notes];
    let announced = false;
    if (spec.announce ?? true) {
      const a = await this.addresses.announce(spec);
      announced = a.announced;
      notes.push(...a.notes);
    }
    return { addressAdded, announced, notes };
  }

  /** Associate (or move) the address to a private address: map elements + conntrack flush. */
  async associate(spec: {
    table: string;
    publicIp: string;
    privateIp: string;
  }): Promise<ElasticIpUpdateResult> {
    return this.table.updateElasticIps(spec.table, [
      { publicIp: spec.publicIp, privateIp: assertIpv4(spec.privateIp, 'private address') },
    ]);
  }

  async disassociate(spec: { table: string; publicIp: string }): Promise<ElasticIpUpdateResult> {
    return this.table.updateElasticIps(spec.table, [{ publicIp: spec.publicIp, privateIp: null }]);
  }

  /** Out of the maps and eip_held (an association's flows flushed), then off the uplink. */
  async release(
    spec: ElasticIpAddressSpec & { table: string },
  ): Promise<{ addressRemoved: boolean; notes: string[] }> {
    const r = await this.table.updateElasticIps(spec.table, [
      { publicIp: spec.publicIp, released: true },
    ]);
    const addressRemoved = await this.addresses.remove(spec);
    return { addressRemoved, notes: r.notes };
  }
}
