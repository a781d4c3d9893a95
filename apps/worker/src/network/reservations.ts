import { hostnameFor, ipToInt, parseCidr } from '@minicloud/domain';
import { findVpcWithSubnets, listVpcDhcpLeases } from '@minicloud/db';
import type { DhcpReservation, VpcNetworkSpec } from '@minicloud/network';
import type { WorkerDeps } from '../context.js';
import { Rerun } from './rerun.js';
import { stateOf } from './state.js';
import { vpcNetworkSpec } from './vpc-spec.js';

/**
 * The VPC's dnsmasq serves exactly the addresses of its instances that are not terminated.
 *
 * Lock order: the database is read here, in the worker, and the full set handed to the driver,
 * which never calls back. Per VPC one run at a time, and every call that arrives during a run
 * shares the next run, which reads the database after their rows were committed: a slower run can
 * never apply an older set after a newer one, and a burst of launches costs one read, one hosts
 * file write and one SIGHUP per run instead of one each. Leases outside every subnet (a bad row)
 * are left out and logged.
 */
export function syncVpcReservations(
  deps: WorkerDeps,
  vpcId: string,
  knownSpec?: VpcNetworkSpec,
): Promise<void> {
  const { reservations, ensured } = stateOf(deps);
  let writer = reservations.get(vpcId);
  if (!writer) {
    writer = { rerun: new Rerun<void>(), spec: null };
    reservations.set(vpcId, writer);
  }
  if (knownSpec) writer.spec = knownSpec;
  const w = writer;
  return w.rerun.run(async () => {
    // The subnets as this process made them on the host, else as the latest caller knew them.
    const spec = ensured.get(vpcId)?.spec ?? w.spec ?? (await loadSpec(deps, vpcId));
    if (!spec || spec.subnets.length === 0) return;
    const leases = await listVpcDhcpLeases(deps.db, vpcId);
    const set: DhcpReservation[] = [];
    for (const l of leases) {
      if (!isGuestAddress(spec, l.ip)) {
        deps.log(`network: ${l.instanceId}'s address ${l.ip} is in no subnet of ${vpcId}: skipped`);
        continue;
      }
      set.push({ mac: l.mac, ip: l.ip, hostname: hostnameFor(l.instanceId, l.ip) });
    }
    await deps.network.setVpcReservations(spec, set);
  });
}

async function loadSpec(deps: WorkerDeps, vpcId: string): Promise<VpcNetworkSpec | null> {
  const vpc = await findVpcWithSubnets(deps.db, vpcId);
  return vpc ? vpcNetworkSpec(deps.settings, vpc) : null;
}

/** A host address of one of the spec's subnets and not its router. */
function isGuestAddress(spec: VpcNetworkSpec, ip: string): boolean {
  let n: number;
  try {
    n = ipToInt(ip);
  } catch {
    return false;
  }
  return spec.subnets.some((s) => {
    const c = parseCidr(s.cidr);
    return n >= c.firstHostInt && n <= c.lastHostInt && s.gatewayIp !== ip;
  });
}
