import { NetworkDriverError } from '../errors.js';
import type { LinuxHost } from './linux-host.js';

export type NftFamily = 'ip' | 'inet' | 'bridge';

/** nftables through `nft`: scripts applied in one transaction, tables read back as JSON. */
export class Nft {
  constructor(private readonly host: LinuxHost) {}

  /** `nft -f -`: the whole script is one transaction (all of it applies, or none). */
  async apply(script: string): Promise<void> {
    await this.host.exec('nft', ['-f', '-'], script);
  }

  /** The table as `nft -j list table` prints it, or null when it does not exist. */
  async listTable(family: NftFamily, table: string): Promise<string | null> {
    const r = await this.host.probe('nft', ['-j', 'list', 'table', family, table]);
    if (r.exitCode === 0) return r.stdout;
    if (/No such file or directory/i.test(r.stderr)) return null;
    throw new NetworkDriverError(
      'NetworkHostError',
      `nft list table ${family} ${table} failed: ${r.stderr.trim()}`,
    );
  }

  /** Names of the tables of a family that start with `start`, sorted. */
  async tableNames(family: NftFamily, start: string): Promise<string[]> {
    const r = await this.host.exec('nft', ['-j', 'list', 'tables', family]);
    const items =
      (JSON.parse(r.stdout) as { nftables?: { table?: { name?: string } }[] }).nftables ?? [];
    return items.flatMap((i) => (i.table?.name?.startsWith(start) ? [i.table.name] : [])).sort();
  }
}
