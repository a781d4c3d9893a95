import { rangeToCidrs } from '@minicloud/domain';
import type { ElasticIp, InternetGateway, Subnet, Vpc } from '@prisma/client';
import type { DbClient } from './client.js';

/**
 * Reads and writes of VPCs, subnets, DHCP leases, Elastic IPs and address pools that the worker's
 * network side (and later the API) share. Plain functions over the Prisma client.
 */

export type VpcWithSubnets = Vpc & { subnets: Subnet[] };
export type VpcWithSubnetsAndGateway = VpcWithSubnets & { gateway: InternetGateway | null };

/** A live instance's port: what its tap and DHCP reservation are made of. */
export interface InstancePortRow {
  id: string;
  vpcId: string;
  macAddress: string;
}

/** One DHCP reservation of a VPC: a live instance's address. */
export interface DhcpLeaseRow {
  instanceId: string;
  ip: string;
  mac: string;
}

export function findVpcWithSubnets(db: DbClient, vpcId: string): Promise<VpcWithSubnets | null> {
  return db.vpc.findUnique({ where: { id: vpcId }, include: { subnets: true } });
}

/** Every VPC with its subnets and internet gateway, oldest first. */
export function listVpcsWithSubnets(db: DbClient): Promise<VpcWithSubnetsAndGateway[]> {
  return db.vpc.findMany({
    include: { subnets: true, gateway: true },
    orderBy: { createdAt: 'asc' },
  });
}

/** A VPC and the given subnets of it leave `pending` (they are made on the host). */
/** The ids of every VPC row. */
export async function listVpcIds(db: DbClient): Promise<Set<string>> {
  return new Set((await db.vpc.findMany({ select: { id: true } })).map((v) => v.id));
}

export async function markVpcAvailable(
  db: DbClient,
  vpcId: string,
  pendingSubnetIds: readonly string[],
): Promise<void> {
  await db.vpc.updateMany({ where: { id: vpcId, state: 'pending' }, data: { state: 'available' } });
  if (pendingSubnetIds.length) {
    await db.subnet.updateMany({
      where: { id: { in: [...pendingSubnetIds] }, state: 'pending' },
      data: { state: 'available' },
    });
  }
}

/** Ports of every instance that is not terminated. */
export function listLiveInstancePorts(db: DbClient): Promise<InstancePortRow[]> {
  return db.instance.findMany({
    where: { state: { not: 'terminated' } },
    select: { id: true, vpcId: true, macAddress: true },
  });
}

/** The addresses of a VPC's instances that are not terminated: its DHCP reservations. */
export async function listVpcDhcpLeases(db: DbClient, vpcId: string): Promise<DhcpLeaseRow[]> {
  const leases = await db.addressLease.findMany({
    where: { network: vpcId, instance: { state: { not: 'terminated' } } },
    select: { ip: true, instanceId: true, instance: { select: { macAddress: true } } },
  });
  return leases.map((l) => ({ instanceId: l.instanceId, ip: l.ip, mac: l.instance.macAddress }));
}

/** Every allocated Elastic IP, by public address. */
export function listElasticIps(db: DbClient): Promise<ElasticIp[]> {
  return db.elasticIp.findMany({ orderBy: { publicIp: 'asc' } });
}

export function findElasticIps(
  db: DbClient,
  allocationIds: readonly string[],
): Promise<ElasticIp[]> {
  return db.elasticIp.findMany({ where: { id: { in: [...allocationIds] } } });
}

/** The VPCs that have an internet gateway attached. */
export async function listVpcIdsWithInternetGateway(db: DbClient): Promise<Set<string>> {
  const gateways = await db.internetGateway.findMany({
    where: { vpcId: { not: null } },
    select: { vpcId: true },
  });
  return new Set(gateways.flatMap((g) => (g.vpcId ? [g.vpcId] : [])));
}

/** The public address pools as CIDRs (a pool whose range does not parse is left out). */
export async function listPublicPoolCidrs(db: DbClient): Promise<string[]> {
  const pools = await db.publicIpv4Pool.findMany();
  return pools.flatMap((p) => {
    try {
      return rangeToCidrs(p.firstIp, p.lastIp);
    } catch {
      return [];
    }
  });
}
