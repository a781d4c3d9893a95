import { CloudError, errors, ipToInt, isIpv4, newId } from '@minicloud/domain';
import {
  deleteTags,
  findInstance,
  isUniqueViolation,
  readTags,
  writeTags,
  type TagInput,
  type Tx,
  presentTagged,
} from '@minicloud/db';
import type { ElasticIp, PublicIpv4Pool } from '@prisma/client';
import type { ServiceContext } from './context.js';
import { requestNetworkApply } from './network-apply.js';
import {
  checkPoolAgainstHost,
  firstFreeInRange,
  overlapping,
  parsePoolRange,
  parsePoolSetting,
  rangeOfCidr,
} from './network-rules.js';

export function presentAddress(e: ElasticIp, tags: { key: string; value: string }[] = []) {
  return {
    allocationId: e.id,
    publicIp: e.publicIp,
    domain: 'vpc',
    publicIpv4Pool: e.poolId,
    associationId: e.associationId,
    instanceId: e.instanceId,
    privateIpAddress: e.privateIp,
    vpcId: e.vpcId,
    autoAssigned: e.autoAssigned,
    tags,
  };
}

function presentPool(p: PublicIpv4Pool, allocated: number) {
  const total = ipToInt(p.lastIp) - ipToInt(p.firstIp) + 1;
  return {
    poolId: p.id,
    description: p.description,
    firstIp: p.firstIp,
    lastIp: p.lastIp,
    totalAddressCount: total,
    totalAvailableAddressCount: total - allocated,
  };
}

const addressNotFound = (id: string) =>
  errors.notFound('InvalidAllocationID.NotFound', `The allocation ID '${id}' does not exist.`);
const poolNotFound = (id: string) =>
  errors.notFound('InvalidPublicIpv4PoolID.NotFound', `The pool ID '${id}' does not exist.`);

const MAX_ALLOCATE_ATTEMPTS = 8;

/**
 * Public address pools (admin) and Elastic IPs. The unique public address makes a double
 * allocation impossible; associations are one row update, applied on the host by the worker's
 * 'network.apply' (a set-element change in nftables).
 */
export class AddressService {
  constructor(private readonly ctx: ServiceContext) {}

  // -------------------------------------------------------------- pools

  async createPool(
    input: ({ cidr: string } | { firstIp: string; lastIp: string }) & { description?: string },
  ) {
    const range = parsePoolRange(input);
    checkPoolAgainstHost(range, this.ctx.settings.uplinkAddresses ?? []);
    const { db } = this.ctx;
    const pool = await db.$transaction(async (tx) => {
      await assertPoolIsFree(tx, range);
      return tx.publicIpv4Pool.create({
        data: {
          id: newId('publicIpv4Pool'),
          firstIp: range.first,
          lastIp: range.last,
          description: input.description ?? null,
        },
      });
    });
    return presentPool(pool, 0);
  }

  /** The pool from MINICLOUD_ELASTIC_IP_POOL: added once (an identical pool counts as there). */
  async ensurePool(setting: string) {
    const range = parsePoolSetting(setting);
    // Checked also when the pool is already stored: the uplink's addresses may have changed.
    checkPoolAgainstHost(range, this.ctx.settings.uplinkAddresses ?? []);
    const existing = await this.ctx.db.publicIpv4Pool.findFirst({
      where: { firstIp: range.first, lastIp: range.last },
    });
    if (existing) return presentPool(existing, await this.allocatedIn(existing.id));
    return this.createPool({
      firstIp: range.first,
      lastIp: range.last,
      description: 'MINICLOUD_ELASTIC_IP_POOL',
    });
  }

  private allocatedIn(poolId: string) {
    return this.ctx.db.elasticIp.count({ where: { poolId } });
  }

  async describePools() {
    const { db } = this.ctx;
    const pools = await db.publicIpv4Pool.findMany({ orderBy: { createdAt: 'asc' } });
    const counts = await db.elasticIp.groupBy({ by: ['poolId'], _count: { _all: true } });
    const used = new Map(counts.map((c) => [c.poolId, c._count._all]));
    return pools.map((p) => presentPool(p, used.get(p.id) ?? 0));
  }

  async deletePool(poolId: string) {
    await this.ctx.db.$transaction(async (tx) => {
      const pool = await tx.publicIpv4Pool.findUnique({ where: { id: poolId } });
      if (!pool) throw poolNotFound(poolId);
      const allocated = await tx.elasticIp.count({ where: { poolId } });
      if (allocated) {
        throw errors.dependency(
          `The pool '${poolId}' has ${allocated} allocated address(es); release them first.`,
        );
      }
      await tx.publicIpv4Pool.delete({ where: { id: poolId } });
    });
    return { poolId, deleted: true };
  }

  // -------------------------------------------------------- Elastic IPs

  async allocate(input: { publicIpv4Pool?: string; address?: string; tags?: TagInput }) {
    if (input.address !== undefined && !isIpv4(input.address))
      throw errors.invalidParameter(`'${input.address}' is not a valid IPv4 address.`);
    for (let attempt = 1; ; attempt++) {
      try {
        const row = await this.ctx.db.$transaction(async (tx) => {
          const row = await allocateFromPools(tx, {
            poolId: input.publicIpv4Pool,
            address: input.address,
          });
          await writeTags(tx, row.id, input.tags);
          return row;
        });
        await requestNetworkApply(this.ctx, `allocate ${row.id}`);
        return presentAddress(row, (await readTags(this.ctx.db, [row.id])).get(row.id));
      } catch (e) {
        // Another allocation took the same address first: pick again (unless it was asked for).
        if (isUniqueViolation(e, 'publicIp')) {
          if (input.address) throw addressInUse(input.address);
          if (attempt < MAX_ALLOCATE_ATTEMPTS) continue;
        }
        throw e;
      }
    }
  }

  async describe(allocationIds?: string[]) {
    const rows = await this.ctx.db.elasticIp.findMany({
      where: allocationIds ? { id: { in: allocationIds } } : {},
      orderBy: { createdAt: 'asc' },
    });
    return presentTagged(this.ctx.db, rows, presentAddress);
  }

  async get(allocationId: string) {
    const [address] = await this.describe([allocationId]);
    if (!address) throw addressNotFound(allocationId);
    return address;
  }

  async release(allocationId: string) {
    await this.ctx.db.$transaction(async (tx) => {
      const row = await tx.elasticIp.findUnique({ where: { id: allocationId } });
      if (!row) throw addressNotFound(allocationId);
      if (row.associationId) {
        throw new CloudError(
          'InvalidIPAddress.InUse',
          `The address ${row.publicIp} is associated with ${row.instanceId}; disassociate it first.`,
          409,
        );
      }
      await tx.elasticIp.delete({ where: { id: allocationId } });
      await deleteTags(tx, allocationId);
    });
    await requestNetworkApply(this.ctx, `release ${allocationId}`);
    return { allocationId, released: true };
  }

  /**
   * 1:1 NAT between the address and the instance's primary private address. Moving an address
   * needs allowReassociation (as EC2); an instance's previous address is disassociated.
   */
  async associate(
    allocationId: string,
    input: { instanceId: string; allowReassociation: boolean },
  ) {
    const touched = [allocationId];
    const row = await this.ctx.db.$transaction(async (tx) => {
      const address = await tx.elasticIp.findUnique({ where: { id: allocationId } });
      if (!address) throw addressNotFound(allocationId);
      const instance = await findInstance(tx, input.instanceId);
      if (!instance) {
        throw errors.notFound(
          'InvalidInstanceID.NotFound',
          `The instance ID '${input.instanceId}' does not exist.`,
        );
      }
      if (instance.state === 'terminated' || instance.state === 'shutting-down') {
        throw errors.incorrectState(
          `The instance '${instance.id}' is ${instance.state}; an address cannot be associated with it.`,
        );
      }
      if (!instance.privateIp) {
        throw errors.incorrectState(`The instance '${instance.id}' has no private address.`);
      }
      if (address.instanceId === instance.id) return address;
      if (address.autoAssigned) {
        throw new CloudError(
          'InvalidAddress.Locked',
          `${address.publicIp} was assigned to ${address.instanceId} at launch; allocate an Elastic IP instead.`,
        );
      }
      const gateway = await tx.internetGateway.findUnique({ where: { vpcId: instance.vpcId } });
      if (!gateway) {
        throw new CloudError(
          'Gateway.NotAttached',
          `Network ${instance.vpcId} is not attached to any internet gateway.`,
        );
      }
      if (address.instanceId && !input.allowReassociation) {
        throw new CloudError(
          'Resource.AlreadyAssociated',
          `The address ${address.publicIp} is already associated with ${address.instanceId}; pass allowReassociation to move it.`,
          409,
        );
      }
      // The instance's previous public address (an Elastic IP or one given at launch) lets go.
      const previous = await tx.elasticIp.findMany({
        where: { instanceId: instance.id, autoAssigned: false },
        select: { id: true },
      });
      touched.push(...previous.map((p) => p.id));
      await tx.elasticIp.deleteMany({ where: { instanceId: instance.id, autoAssigned: true } });
      await tx.elasticIp.updateMany({
        where: { instanceId: instance.id },
        data: { instanceId: null, privateIp: null, vpcId: null, associationId: null },
      });
      return tx.elasticIp.update({
        where: { id: allocationId },
        data: {
          instanceId: instance.id,
          privateIp: instance.privateIp,
          vpcId: instance.vpcId,
          associationId: newId('elasticIpAssociation'),
        },
      });
    });
    await requestNetworkApply(this.ctx, `associate ${allocationId}`, { elasticIpIds: touched });
    return presentAddress(row, (await readTags(this.ctx.db, [row.id])).get(row.id));
  }

  async disassociate(allocationId: string) {
    const row = await this.ctx.db.$transaction(async (tx) => {
      const address = await tx.elasticIp.findUnique({ where: { id: allocationId } });
      if (!address) throw addressNotFound(allocationId);
      if (address.autoAssigned) {
        throw new CloudError(
          'InvalidAddress.Locked',
          `${address.publicIp} was assigned at launch and goes with its instance.`,
        );
      }
      if (!address.associationId) return address;
      return tx.elasticIp.update({
        where: { id: allocationId },
        data: { instanceId: null, privateIp: null, vpcId: null, associationId: null },
      });
    });
    await requestNetworkApply(this.ctx, `disassociate ${allocationId}`, {
      elasticIpIds: [allocationId],
    });
    return presentAddress(row, (await readTags(this.ctx.db, [row.id])).get(row.id));
  }
}

const addressInUse = (ip: string) =>
  new CloudError('InvalidAddress.InUse', `The address ${ip} is already allocated.`, 409);

/** A pool must not overlap another pool or any VPC (its addresses would be routed twice). */
async function assertPoolIsFree(tx: Tx, range: { first: string; last: string }) {
  const [pools, vpcs] = await Promise.all([tx.publicIpv4Pool.findMany(), tx.vpc.findMany()]);
  const pool = pools.find((p) => overlapping(range, { first: p.firstIp, last: p.lastIp }));
  if (pool) {
    throw new CloudError(
      'InvalidParameterValue',
      `The range ${range.first}-${range.last} overlaps pool ${pool.id} (${pool.firstIp}-${pool.lastIp}).`,
    );
  }
  const vpc = vpcs.find((v) => overlapping(range, rangeOfCidr(v.cidrBlock)));
  if (vpc) {
    throw new CloudError(
      'InvalidParameterValue',
      `The range ${range.first}-${range.last} overlaps ${vpc.id} (${vpc.cidrBlock}); public addresses must lie outside every VPC.`,
    );
  }
}

/**
 * One free public address as a new ElasticIp row (not yet associated): from the given pool, the
 * requested address, or the first pool with room. Used by allocate and by launches into a
 * subnet with mapPublicIpOnLaunch.
 */
export async function allocateFromPools(
  tx: Tx,
  want: { poolId?: string; address?: string; autoAssigned?: boolean },
  association?: { instanceId: string; privateIp: string; vpcId: string },
): Promise<ElasticIp> {
  const pools = await tx.publicIpv4Pool.findMany({
    where: want.poolId ? { id: want.poolId } : {},
    orderBy: { createdAt: 'asc' },
  });
  if (want.poolId && !pools.length) throw poolNotFound(want.poolId);
  let pick: { poolId: string; ip: string } | null = null;
  if (want.address) {
    const n = ipToInt(want.address);
    const pool = pools.find((p) => n >= ipToInt(p.firstIp) && n <= ipToInt(p.lastIp));
    if (!pool) {
      throw new CloudError(
        'InvalidAddress.NotFound',
        `The address ${want.address} is not in any public address pool${want.poolId ? ` (${want.poolId})` : ''}.`,
      );
    }
    if (await tx.elasticIp.findUnique({ where: { publicIp: want.address } }))
      throw addressInUse(want.address);
    pick = { poolId: pool.id, ip: want.address };
  } else {
    for (const pool of pools) {
      const rows = await tx.elasticIp.findMany({
        where: { poolId: pool.id },
        select: { publicIp: true },
      });
      const ip = firstFreeInRange(
        { first: pool.firstIp, last: pool.lastIp },
        new Set(rows.map((r) => r.publicIp)),
      );
      if (ip) {
        pick = { poolId: pool.id, ip };
        break;
      }
    }
  }
  if (!pick) {
    throw new CloudError(
      'InsufficientAddressCapacity',
      pools.length
        ? 'Every public address of the pool(s) is allocated.'
        : 'No public address pool is configured (MINICLOUD_ELASTIC_IP_POOL or POST /v1/public-ipv4-pools).',
      409,
    );
  }
  return tx.elasticIp.create({
    data: {
      id: newId('elasticIp'),
      publicIp: pick.ip,
      poolId: pick.poolId,
      autoAssigned: want.autoAssigned ?? false,
      ...(association ? { ...association, associationId: newId('elasticIpAssociation') } : {}),
    },
  });
}
