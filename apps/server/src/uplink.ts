import { intToIp, parseCidr } from '@minicloud/domain';
import { run } from '@minicloud/host';

/** An address of the uplink's network that no public pool may hold, and why. */
export interface UplinkAddress {
  ip: string;
  what: string;
}

interface IpAddrJson {
  addr_info?: { family?: string; local?: string; prefixlen?: number; scope?: string }[];
}
interface IpRouteJson {
  gateway?: string;
}

/**
 * The uplink's own IPv4 addresses (scope global: Elastic IPs are scope host /32s and do not
 * count), the network and broadcast addresses of their subnets, and the gateways of its routes,
 * from `ip -j -4 addr show dev UPLINK` and `ip -j -4 route show dev UPLINK`. Pure.
 */
export function uplinkAddressesFrom(
  uplink: string,
  addrs: IpAddrJson[],
  routes: IpRouteJson[],
): UplinkAddress[] {
  const out: UplinkAddress[] = [];
  for (const a of addrs.flatMap((l) => l.addr_info ?? [])) {
    if (a.family !== 'inet' || !a.local || a.scope === 'host') continue;
    out.push({ ip: a.local, what: `an address of the uplink ${uplink}` });
    const prefix = a.prefixlen ?? 32;
    if (prefix <= 30) {
      const net = parseCidr(`${a.local}/${prefix}`, { allowHostBits: true });
      out.push({ ip: net.network, what: `the network address of ${uplink}'s subnet` });
      out.push({
        ip: intToIp(net.broadcastInt),
        what: `the broadcast address of ${uplink}'s subnet`,
      });
    }
  }
  for (const r of routes) {
    if (r.gateway) out.push({ ip: r.gateway, what: `a gateway of the uplink ${uplink}` });
  }
  return out;
}

/** The same, read from the host. */
export async function readUplinkAddresses(uplink: string): Promise<UplinkAddress[]> {
  const json = async (args: string[]) => JSON.parse((await run('ip', args)).stdout || '[]');
  return uplinkAddressesFrom(
    uplink,
    await json(['-j', '-4', 'addr', 'show', 'dev', uplink]),
    await json(['-j', '-4', 'route', 'show', 'dev', uplink]),
  );
}
