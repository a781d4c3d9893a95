import { assertNamePrefix, bridgeMacFor } from '@minicloud/domain';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { OwnedLink, OwnedLinkKind } from '../driver.js';
import { NetworkDriverError } from '../errors.js';
import type { IpLink, LinuxHost } from '../host/linux-host.js';

/** Bridges and the listing of our links (taps are in ports.ts). */
export class Links {
  constructor(private readonly host: LinuxHost) {}

  /**
   * The bridge exists: created (fixed MAC, so neighbours never see it change) when missing.
   * Returns the link as it was found with its addresses (null when this call created it). A
   * link of that name that is no bridge is a conflict.
   */
  async ensureBridge(bridge: string): Promise<{ found: IpLink | null; created: boolean }> {
    const found = await this.host.showLink(bridge, 'addr');
    if (found === null) {
      await this.host.exec('ip', [
        'link',
        'add',
        'dev',
        bridge,
        'address',
        bridgeMacFor(bridge),
        'type',
        'bridge',
      ]);
      return { found: null, created: true };
    }
    if (found.linkinfo?.info_kind !== 'bridge') {
      throw new NetworkDriverError(
        'NetworkLinkConflict',
        `${bridge} exists but is a ${found.linkinfo?.info_kind ?? 'plain'} link, not a bridge`,
      );
    }
    return { found, created: false };
  }

  /**
   * The bridge's sysctls, written before it goes up, so the host never configures IPv6 on it (or
   * accepts router advertisements from guests).
   */
  async writeBridgeSysctls(bridge: string): Promise<void> {
    const v4 = join(this.host.procRoot, 'sys/net/ipv4/conf', bridge);
    const settings: [string, string][] = [
      // Drop packets whose source does not route back through the bridge (anti-spoofing).
      [join(v4, 'rp_filter'), '1'],
      [join(v4, 'accept_redirects'), '0'],
      [join(v4, 'accept_source_route'), '0'],
      [join(v4, 'send_redirects'), '0'],
      // Answer ARP only for addresses on the bridge itself, not for the host's other addresses.
      [join(v4, 'arp_ignore'), '1'],
      [join(v4, 'arp_announce'), '2'],
      // No IPv6 on the host side: no link-local address, no SLAAC from guests' router adverts.
      [join(this.host.procRoot, 'sys/net/ipv6/conf', bridge, 'disable_ipv6'), '1'],
    ];
    for (const [path, value] of settings) {
      try {
        await writeFile(path, `${value}\n`);
      } catch (e) {
        // IPv6 may be compiled out or disabled at boot: then there is nothing to turn off.
        if ((e as NodeJS.ErrnoException).code === 'ENOENT' && path.includes('/ipv6/')) continue;
        throw new NetworkDriverError('NetworkHostError', `cannot write ${path}: ${String(e)}`, e);
      }
    }
  }

  /** Delete the bridge and the taps attached to it. Returns what it deleted. */
  async removeBridge(bridge: string): Promise<string[]> {
    const link = await this.host.showLink(bridge, 'link');
    if (link === null) return [];
    if (link.linkinfo?.info_kind !== 'bridge') {
      throw new NetworkDriverError(
        'NetworkLinkConflict',
        `${bridge} exists but is not a bridge; not deleting it`,
      );
    }
    const removed: string[] = [];
    for (const p of await this.host.ipJson(['-d', 'link', 'show', 'master', bridge])) {
      if (p.linkinfo?.info_kind === 'tun') {
        await this.host.deleteLink(p.ifname);
        removed.push(`deleted tap ${p.ifname}`);
      }
    }
    await this.host.deleteLink(bridge);
    removed.push(`deleted bridge ${bridge}`);
    return removed;
  }

  /** Links (bridges, taps, ...) whose name starts with the prefix: what the reconciler sweeps. */
  async listOwned(prefix: string): Promise<OwnedLink[]> {
    assertNamePrefix(prefix);
    const links = await this.host.ipJson(['-d', 'link', 'show']);
    return links
      .filter((l) => typeof l.ifname === 'string' && l.ifname.startsWith(prefix))
      .map((l) => {
        const k = l.linkinfo?.info_kind;
        const kind: OwnedLinkKind = k === 'bridge' || k === 'tun' || k === 'veth' ? k : 'other';
        return {
          name: l.ifname,
          kind,
          tunType: kind === 'tun' ? (l.linkinfo?.info_data?.type ?? null) : null,
          master: l.master ?? null,
          up: (l.flags ?? []).includes('UP'),
          mac: l.address ?? null,
        };
      });
  }
}
