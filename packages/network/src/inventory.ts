import { assertNamePrefix } from '@minicloud/domain';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { removePath } from '@minicloud/host';
import { assertSafePath } from './dhcp/dnsmasq-args.js';
import type { DnsmasqSupervisor } from './dhcp/dnsmasq.js';
import type { OwnedVpcObjects } from './driver.js';
import type { LinuxHost } from './host/linux-host.js';
import type { Nft, NftFamily } from './host/nft.js';
import type { ProcessTable } from './host/processes.js';
import type { Links } from './links/links.js';
import type { UplinkAddresses } from './vpc/uplink-addresses.js';
import type { VpcTable } from './vpc/vpc-table.js';

/** Bridges and taps this package names (see @minicloud/domain's host names), per prefix. */
function ownLinkName(prefix: string): RegExp {
  // VPC bridge <prefix>v<9 hex>, tap <prefix>t<9 hex>, the pre-VPC bridge <prefix>br<suffix>.
  return new RegExp(`^${prefix}(?:v[0-9a-f]{9}|t[0-9a-f]{9}|br[a-z0-9]+)$`);
}

const FAMILIES: readonly NftFamily[] = ['ip', 'inet', 'bridge'];

/** What this installation owns on the host: listed for the reconciler, swept for teardown. */
export class Inventory {
  constructor(
    private readonly host: LinuxHost,
    private readonly processes: ProcessTable,
    private readonly nft: Nft,
    private readonly links: Links,
    private readonly dnsmasq: DnsmasqSupervisor,
    private readonly vpcTable: VpcTable,
    private readonly uplink: UplinkAddresses,
  ) {}

  /** nft tables of every family named <prefix>_*, as 'family name'. */
  async listOwnedTables(prefix: string): Promise<string[]> {
    assertNamePrefix(prefix);
    const out: string[] = [];
    for (const family of FAMILIES) {
      for (const t of await this.nft.tableNames(family, `${prefix}_`)) out.push(`${family} ${t}`);
    }
    return out;
  }

  async listOwnedVpcObjects(
    prefix: string,
    options: { uplink?: string | null; pools?: readonly string[]; stateRoot?: string } = {},
  ): Promise<OwnedVpcObjects> {
    assertNamePrefix(prefix);
    const re = new RegExp(`^${prefix}v[0-9a-f]{9}$`);
    const bridges = (await this.links.listOwned(prefix)).filter(
      (l) => l.kind === 'bridge' && re.test(l.name),
    );
    const dnsmasq = await this.dnsmasq.list((b) => re.test(b));
    const tables = await this.vpcTable.listOwned(prefix);
    const elasticIpAddresses =
      options.uplink && (await this.host.linkExists(options.uplink))
        ? await this.uplink.list({
            uplink: options.uplink,
            prefix,
            ...(options.pools ? { pools: options.pools } : {}),
          })
        : [];
    let stateDirs: string[] = [];
    if (options.stateRoot) {
      const root = assertSafePath(options.stateRoot, 'stateRoot');
      stateDirs = (await readdir(root).catch(() => [] as string[]))
        .sort()
        .map((d) => join(root, d));
    }
    return { bridges, dnsmasq, tables, elasticIpAddresses, stateDirs };
  }

  /**
   * Everything with the prefix, whatever version made it: our dnsmasq processes, then taps, then
   * bridges (only names this package gives, only of the kind it makes), nft tables of every
   * family, and the entries of stateRoot. Returns what it removed.
   */
  async sweep(prefix: string, options: { stateRoot?: string } = {}): Promise<string[]> {
    assertNamePrefix(prefix);
    const own = ownLinkName(prefix);
    const removed: string[] = [];
    for (const d of await this.dnsmasq.list((b) => own.test(b))) {
      await this.processes.stop(d.pid);
      removed.push(`dnsmasq ${d.pid} (${d.bridge})`);
    }
    const links = (await this.links.listOwned(prefix)).filter(
      (l) => own.test(l.name) && (l.kind === 'tun' || l.kind === 'bridge'),
    );
    // Taps first, so no guest port is ever left on a half-removed bridge.
    links.sort((a, b) => Number(a.kind === 'bridge') - Number(b.kind === 'bridge'));
    for (const l of links) {
      if (await this.host.deleteLink(l.name))
        removed.push(`${l.kind === 'tun' ? 'tap' : 'bridge'} ${l.name}`);
    }
    for (const table of await this.listOwnedTables(prefix)) {
      await this.host.exec('nft', ['delete', 'table', ...table.split(' ')]);
      removed.push(`nft table ${table}`);
    }
    if (options.stateRoot) {
      const root = assertSafePath(options.stateRoot, 'stateRoot');
      for (const entry of await readdir(root).catch(() => [] as string[])) {
        await removePath(join(root, entry));
        removed.push(join(root, entry));
      }
    }
    return removed;
  }
}
