import { assertForeignLinkName, assertIpv4, cidrContains, elasticIpLabel } from '@minicloud/domain';
import type { AnnounceResult, ElasticIpAddressSpec } from '../driver.js';
import { NetworkDriverError } from '../errors.js';
import { isMissingCommand, msSince, type IpAddrInfo, type LinuxHost } from '../host/linux-host.js';

export interface UplinkAddressesOptions {
  /**
   * How to announce an Elastic IP: 'arping' (iputils-arping: `arping -U -c 1 -I UPLINK IP`, takes
   * about 1 s because it waits for replies), 'busybox' (`busybox arping -U -c 1`, about 10 ms), or
   * 'none'. Default 'arping', falling back to busybox when arping is not installed.
   */
  arpAnnounce?: 'arping' | 'busybox' | 'none';
}

/**
 * Elastic IPs held on the uplink as /32 addresses (scope host, so the host never picks one as a
 * source address; label <uplink>:<prefix>, so ownership is visible in `ip addr`), and their
 * announcement by gratuitous ARP.
 */
export class UplinkAddresses {
  private readonly arpAnnounce: 'arping' | 'busybox' | 'none';
  private arpingMissing = false;

  constructor(
    private readonly host: LinuxHost,
    options: UplinkAddressesOptions = {},
  ) {
    this.arpAnnounce = options.arpAnnounce ?? 'arping';
  }

  /**
   * `ip addr add IP/32 dev UPLINK scope host label UPLINK:PREFIX` (still answered by ARP).
   * Returns whether it was added. Refuses an address some other interface holds.
   */
  async ensure(spec: ElasticIpAddressSpec): Promise<boolean> {
    const uplink = assertForeignLinkName(spec.uplink, 'uplink');
    const ip = assertIpv4(spec.publicIp, 'Elastic IP');
    const label = elasticIpLabel(uplink, spec.prefix);
    const all = await this.host.ipJson(['-4', 'addr', 'show']);
    if (!all.some((l) => l.ifname === uplink))
      throw new NetworkDriverError('NetworkHostError', `uplink ${uplink} does not exist`);
    for (const l of all) {
      const a = (l.addr_info ?? []).find((x) => x.local === ip);
      if (!a) continue;
      if (l.ifname === uplink && a.prefixlen === 32) return false;
      throw new NetworkDriverError(
        'NetworkLinkConflict',
        `Elastic IP ${ip} is already an address of ${l.ifname} (${a.local}/${a.prefixlen})`,
      );
    }
    await this.host.exec('ip', [
      'addr',
      'add',
      `${ip}/32`,
      'dev',
      uplink,
      'scope',
      'host',
      ...(label ? ['label', label] : []),
    ]);
    return true;
  }

  /** Take publicIp (a /32) off the uplink. Returns whether it was there. */
  async remove(spec: Pick<ElasticIpAddressSpec, 'uplink' | 'publicIp'>): Promise<boolean> {
    const uplink = assertForeignLinkName(spec.uplink, 'uplink');
    const ip = assertIpv4(spec.publicIp, 'Elastic IP');
    const link = await this.host.showLink(uplink, 'addr');
    if (!link?.addr_info?.some((a) => a.local === ip && a.prefixlen === 32)) return false;
    await this.host.exec('ip', ['addr', 'del', `${ip}/32`, 'dev', uplink]);
    return true;
  }

  /**
   * /32 addresses with our label; when the label does not fit (long uplink name), scope-host /32
   * addresses inside one of `pools`.
   */
  async list(spec: {
    uplink: string;
    prefix: string;
    pools?: readonly string[];
  }): Promise<string[]> {
    const uplink = assertForeignLinkName(spec.uplink, 'uplink');
    const label = elasticIpLabel(uplink, spec.prefix);
    const link = await this.host.showLink(uplink, 'addr');
    const mine = (a: IpAddrInfo) =>
      a.family === 'inet' &&
      a.prefixlen === 32 &&
      (label !== null
        ? a.label === label
        : a.scope === 'host' && (spec.pools ?? []).some((p) => cidrContains(p, a.local ?? '')));
    return (link?.addr_info ?? [])
      .filter(mine)
      .map((a) => a.local!)
      .sort();
  }

  /** Make the Elastic IPs on the uplink exactly publicIps (for the reconciler). */
  async sync(spec: {
    uplink: string;
    prefix: string;
    publicIps: readonly string[];
    pools?: readonly string[];
  }): Promise<{ added: string[]; removed: string[] }> {
    const want = new Set(spec.publicIps.map((ip) => assertIpv4(ip, 'Elastic IP')));
    const have = await this.list(spec);
    const removed: string[] = [];
    const added: string[] = [];
    for (const ip of have) {
      if (!want.has(ip)) {
        await this.remove({ uplink: spec.uplink, publicIp: ip });
        removed.push(ip);
      }
    }
    for (const ip of want) {
      if (await this.ensure({ ...spec, publicIp: ip })) added.push(ip);
    }
    return { added, removed };
  }

  /**
   * One gratuitous ARP for publicIp on the uplink, so neighbours (the upstream router) update
   * their caches: `arping -U -c 1 -I UPLINK IP` (Debian package iputils-arping; about 1 s, it
   * waits for replies), else `busybox arping`. On a single host the MAC behind an Elastic IP never
   * changes; this matters when an address moves between hosts, or after an uplink change.
   */
  async announce(spec: Pick<ElasticIpAddressSpec, 'uplink' | 'publicIp'>): Promise<AnnounceResult> {
    const uplink = assertForeignLinkName(spec.uplink, 'uplink');
    const ip = assertIpv4(spec.publicIp, 'Elastic IP');
    const t0 = performance.now();
    if (this.arpAnnounce === 'none') return { announced: false, tool: null, ms: 0, notes: [] };
    const notes: string[] = [];
    if (this.arpAnnounce === 'arping' && !this.arpingMissing) {
      try {
        await this.host.exec('arping', ['-U', '-c', '1', '-I', uplink, ip]);
        return { announced: true, tool: 'arping', ms: msSince(t0), notes };
      } catch (e) {
        if (!isMissingCommand(e))
          throw this.host.hostError(`arping for ${ip} on ${uplink} failed`, e);
        this.arpingMissing = true;
        notes.push('arping (Debian package iputils-arping) is not installed: used busybox arping');
      }
    }
    try {
      await this.host.exec('busybox', ['arping', '-U', '-c', '1', '-I', uplink, ip]);
      return { announced: true, tool: 'busybox arping', ms: msSince(t0), notes };
    } catch (e) {
      if (!isMissingCommand(e)) throw this.host.hostError(`busybox arping for ${ip} failed`, e);
      notes.push(`no ARP announcement for ${ip}: neither arping nor busybox is installed`);
      return { announced: false, tool: null, ms: msSince(t0), notes };
    }
  }
}
