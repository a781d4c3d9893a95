import { listPublicPoolCidrs } from '@minicloud/db';
import type { WorkerDeps } from '../context.js';
import { presentUplink } from './elastic-ips.js';
import { stateOf } from './state.js';

/**
 * Remove every network object of this installation, whatever version made it: the Elastic IP
 * addresses on the uplink (found by their label or pool), then everything that carries the
 * prefix (dnsmasq processes, bridges, taps, nft tables) and the networks' state directories.
 */
export async function removeAllNetworks(deps: WorkerDeps): Promise<string[]> {
  const { network, settings } = deps;
  const removed: string[] = [];
  const uplink = await presentUplink(deps);
  if (uplink) {
    const pools = await listPublicPoolCidrs(deps.db).catch(() => [] as string[]);
    for (const ip of await network.listElasticIpAddresses({
      uplink,
      prefix: settings.prefix,
      pools,
    })) {
      await network.removeElasticIpAddress({ uplink, publicIp: ip });
      removed.push(`Elastic IP ${ip} on ${uplink}`);
    }
  }
  removed.push(...(await network.sweep(settings.prefix, { stateRoot: settings.networksDir })));
  const state = stateOf(deps);
  state.ensured.clear();
  state.reservations.clear();
  return removed;
}
