import { KeyedLock } from '@minicloud/domain';
import type { DhcpReservation, NetworkDriver, VpcNetworkSpec } from '@minicloud/network';
import type { WorkerDeps } from '../../src/context.js';

export const VPC = 'vpc-0a0a0a0a0a0a0a0a0';
export const SUBNET = 'subnet-0a0000000000000a1';

export const spec: VpcNetworkSpec = {
  bridge: 'mcv0a0a0a0a0',
  cidr: '10.11.0.0/16',
  subnets: [{ subnetId: SUBNET, cidr: '10.11.0.0/24', gatewayIp: '10.11.0.1' }],
  stateDir: '/var/lib/minicloud/networks/vpc-0a0a0a0a0a0a0a0a0',
};

/** A lease row as the database returns it. */
export function leaseRow(n: number) {
  const id = `i-${n.toString(16).padStart(17, '0')}`;
  return {
    ip: `10.11.0.${n + 10}`,
    instanceId: id,
    instance: { macAddress: `52:54:00:00:00:${n.toString(16).padStart(2, '0')}` },
  };
}

/**
 * Worker dependencies with a scripted database (only what the network code under test reads; any
 * other access fails the test) and a recording network driver.
 */
export function fakeDeps(options: {
  leases?: () => Promise<ReturnType<typeof leaseRow>[]>;
  ensureVpcNetwork?: (s: VpcNetworkSpec) => Promise<{ changed: string[]; notes: string[] }>;
}) {
  const applied: DhcpReservation[][] = [];
  const dbReads: string[] = [];
  const db = new Proxy(
    {
      addressLease: {
        findMany: async () => {
          dbReads.push('addressLease');
          return (await options.leases?.()) ?? [];
        },
      },
    },
    {
      get(target, table: string) {
        if (table in target) return target[table as keyof typeof target];
        throw new Error(`unexpected database read of ${table}`);
      },
    },
  );
  const network = {
    setVpcReservations: async (_s: VpcNetworkSpec, set: readonly DhcpReservation[]) => {
      applied.push([...set]);
      return { changed: true, releasedLeases: [], dnsmasq: 'reloaded' };
    },
    ensureVpcNetwork:
      options.ensureVpcNetwork ??
      (async () => ({ changed: [] as string[], notes: [] as string[] })),
  } as unknown as NetworkDriver;
  const logs: string[] = [];
  const deps = {
    db,
    network,
    locks: new KeyedLock(),
    log: (m: string) => logs.push(m),
    settings: { prefix: 'mc', networksDir: '/var/lib/minicloud/networks', uplink: null },
  } as unknown as WorkerDeps;
  return { deps, applied, dbReads, logs };
}
