import { CloudError, errors, newId, vpcBridgeKey } from '@minicloud/domain';
import {
  countLiveInstances,
  deleteTags,
  isUniqueViolation,
  readTags,
  writeTags,
  type TagInput,
  type Tx,
  presentTagged,
} from '@minicloud/db';
import type { InternetGateway, Subnet, Vpc } from '@prisma/client';
import type { ServiceContext } from './context.js';
import {
  availableAddressCount,
  checkSubnetCidr,
  checkVpcCidr,
  overlapping,
  rangeOfCidr,
} from './network-rules.js';
import { requestNetworkApply } from './network-apply.js';
import { ensureDefaultGroup } from './security-group-rows.js';

export function presentVpc(
  v: Vpc & { gateway: InternetGateway | null },
  tags: { key: string; value: string }[] = [],
) {
  return {
    vpcId: v.id,
    cidrBlock: v.cidrBlock,
    state: v.state,
    isDefault: v.isDefault,
    internetGatewayId: v.gateway?.id ?? null,
    createTime: v.createdAt.toISOString(),
    tags,
  };
}

export function presentSubnet(
  s: Subnet,
  leases: number,
  tags: { key: string; value: string }[] = [],
) {
  return {
    subnetId: s.id,
    vpcId: s.vpcId,
    cidrBlock: s.cidrBlock,
    state: s.state,
    availableIpAddressCount: availableAddressCount(s.cidrBlock, leases),
    mapPublicIpOnLaunch: s.mapPublicIpOnLaunch,
    defaultForAz: s.defaultForAz,
    createTime: s.createdAt.toISOString(),
    tags,
  };
}

export function presentGateway(g: InternetGateway, tags: { key: string; value: string }[] = []) {
  return {
    internetGatewayId: g.id,
    attachments: g.vpcId ? [{ vpcId: g.vpcId, state: 'available' }] : [],
    createTime: g.createdAt.toISOString(),
    tags,
  };
}

const vpcNotFound = (id: string) =>
  errors.notFound('InvalidVpcID.NotFound', `The vpc ID '${id}' does not exist.`);
const subnetNotFound = (id: string) =>
  errors.notFound('InvalidSubnetID.NotFound', `The subnet ID '${id}' does not exist.`);
const gatewayNotFound = (id: string) =>
  errors.notFound(
    'InvalidInternetGatewayID.NotFound',
    `The internet gateway ID '${id}' does not exist.`,
  );

/**
 * VPCs, subnets and internet gateways. The database is the IPAM and the source of truth; every
 * change is one transaction, then one 'network.apply' job makes the host match.
 */
export class NetworkService {
  /** Topology changes (overlap checks + insert) run one at a time in this process. */
  private chain: Promise<unknown> = Promise.resolve();

  constructor(private readonly ctx: ServiceContext) {}

  private serialized<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.chain.then(fn, fn);
    this.chain = next.catch(() => undefined);
    return next;
  }

  // --------------------------------------------------------------- VPCs

  async createVpc(input: { cidrBlock: string; tags?: TagInput }) {
    const cidr = checkVpcCidr(input.cidrBlock);
    const vpc = await this.serialized(async () => {
      await this.assertFreeForVpc(cidr);
      for (let attempt = 1; ; attempt++) {
        const id = newId('vpc');
        try {
          return await this.ctx.db.$transaction(async (tx) => {
            const row = await tx.vpc.create({
              data: { id, cidrBlock: cidr, bridgeKey: vpcBridgeKey(id), state: 'pending' },
              include: { gateway: true },
            });
            await ensureDefaultGroup(tx, id);
            await writeTags(tx, id, input.tags);
            return row;
          });
        } catch (e) {
          // Two VPC ids sharing the 36 bits their bridge is named after: draw another id.
          if (isUniqueViolation(e, 'bridgeKey') && attempt < 5) continue;
          throw e;
        }
      }
    });
    await requestNetworkApply(this.ctx, `create ${vpc.id}`);
    return presentVpc(vpc, (await readTags(this.ctx.db, [vpc.id])).get(vpc.id));
  }

  /** VPC CIDRs never overlap each other (one routing table per host) nor a public pool. */
  private async assertFreeForVpc(cidr: string): Promise<void> {
    const { db } = this.ctx;
    const [vpcs, pools] = await Promise.all([db.vpc.findMany(), db.publicIpv4Pool.findMany()]);
    const range = rangeOfCidr(cidr);
    const vpc = vpcs.find((v) => overlapping(range, rangeOfCidr(v.cidrBlock)));
    if (vpc) {
      throw new CloudError(
        'InvalidVpc.Range',
        `The CIDR '${cidr}' overlaps ${vpc.id} (${vpc.cidrBlock}); VPCs on one minicloud host must not overlap.`,
      );
    }
    const pool = pools.find((p) => overlapping(range, { first: p.firstIp, last: p.lastIp }));
    if (pool) {
      throw new CloudError(
        'InvalidVpc.Range',
        `The CIDR '${cidr}' overlaps the public address pool ${pool.id} (${pool.firstIp}-${pool.lastIp}).`,
      );
    }
  }

  async describeVpcs(vpcIds?: string[]) {
    const rows = await this.ctx.db.vpc.findMany({
      where: vpcIds ? { id: { in: vpcIds } } : {},
      include: { gateway: true },
      orderBy: { createdAt: 'asc' },
    });
    return presentTagged(this.ctx.db, rows, presentVpc);
  }

  async getVpc(vpcId: string) {
    const [vpc] = await this.describeVpcs([vpcId]);
    if (!vpc) throw vpcNotFound(vpcId);
    return vpc;
  }

  async deleteVpc(vpcId: string) {
    const { db } = this.ctx;
    await this.serialized(() =>
      db.$transaction(async (tx) => {
        const vpc = await tx.vpc.findUnique({
          where: { id: vpcId },
          include: { gateway: true, subnets: { select: { id: true } } },
        });
        if (!vpc) throw vpcNotFound(vpcId);
        if (vpc.isDefault) {
          throw new CloudError(
            'OperationNotPermitted',
            `${vpcId} is the default VPC; launches without a subnet go there, so it stays.`,
          );
        }
        if (vpc.subnets.length) {
          throw errors.dependency(
            `The vpc '${vpcId}' has dependencies and cannot be deleted: subnet(s) ${vpc.subnets.map((s) => s.id).join(', ')}.`,
          );
        }
        if (vpc.gateway) {
          throw errors.dependency(
            `The vpc '${vpcId}' has dependencies and cannot be deleted: internet gateway ${vpc.gateway.id} is attached.`,
          );
        }
        const instances = await countLiveInstances(tx, { vpcId });
        if (instances) {
          throw errors.dependency(
            `The vpc '${vpcId}' has dependencies and cannot be deleted: ${instances} instance(s).`,
          );
        }
        const groups = await tx.securityGroup.findMany({ where: { vpcId } });
        const extra = groups.filter((g) => !g.isDefault);
        if (extra.length) {
          throw errors.dependency(
            `The vpc '${vpcId}' has dependencies and cannot be deleted: security group(s) ${extra.map((g) => g.id).join(', ')}.`,
          );
        }
        // The default group goes with its VPC (memberships left are of terminated instances).
        const ids = groups.map((g) => g.id);
        await tx.securityGroupRule.deleteMany({ where: { groupId: { in: ids } } });
        await tx.instanceSecurityGroup.deleteMany({ where: { groupId: { in: ids } } });
        await tx.securityGroup.deleteMany({ where: { id: { in: ids } } });
        await tx.vpc.delete({ where: { id: vpcId } });
        await deleteTags(tx, vpcId);
      }),
    );
    await requestNetworkApply(this.ctx, `delete ${vpcId}`);
    return { vpcId, deleted: true };
  }

  // ------------------------------------------------------------ subnets

  async createSubnet(input: {
    vpcId: string;
    cidrBlock: string;
    mapPublicIpOnLaunch: boolean;
    tags?: TagInput;
  }) {
    const cidr = checkSubnetCidr(input.cidrBlock);
    const subnet = await this.serialized(() =>
      this.ctx.db.$transaction(async (tx) => {
        const vpc = await tx.vpc.findUnique({
          where: { id: input.vpcId },
          include: { subnets: true },
        });
        if (!vpc) throw vpcNotFound(input.vpcId);
        const range = rangeOfCidr(cidr);
        const outer = rangeOfCidr(vpc.cidrBlock);
        if (range.firstInt < outer.firstInt || range.lastInt > outer.lastInt) {
          throw new CloudError(
            'InvalidSubnet.Range',
            `The CIDR '${cidr}' is invalid for ${vpc.id}: it is not inside the VPC's ${vpc.cidrBlock}.`,
          );
        }
        const clash = vpc.subnets.find((s) => overlapping(range, rangeOfCidr(s.cidrBlock)));
        if (clash) {
          throw new CloudError(
            'InvalidSubnet.Conflict',
            `The CIDR '${cidr}' conflicts with ${clash.id} (${clash.cidrBlock}).`,
          );
        }
        const row = await tx.subnet.create({
          data: {
            id: newId('subnet'),
            vpcId: vpc.id,
            cidrBlock: cidr,
            mapPublicIpOnLaunch: input.mapPublicIpOnLaunch,
            state: 'pending',
          },
        });
        await writeTags(tx, row.id, input.tags);
        return row;
      }),
    );
    await requestNetworkApply(this.ctx, `create ${subnet.id}`);
    return presentSubnet(subnet, 0, (await readTags(this.ctx.db, [subnet.id])).get(subnet.id));
  }

  async describeSubnets(filter: { vpcId?: string; subnetIds?: string[] } = {}) {
    const { db } = this.ctx;
    const rows = await db.subnet.findMany({
      where: {
        ...(filter.vpcId ? { vpcId: filter.vpcId } : {}),
        ...(filter.subnetIds ? { id: { in: filter.subnetIds } } : {}),
      },
      orderBy: { createdAt: 'asc' },
    });
    const counts = await db.addressLease.groupBy({
      by: ['subnetId'],
      where: { subnetId: { in: rows.map((r) => r.id) } },
      _count: { _all: true },
    });
    const leases = new Map(counts.map((c) => [c.subnetId, c._count._all]));
    const tags = await readTags(
      db,
      rows.map((r) => r.id),
    );
    return rows.map((r) => presentSubnet(r, leases.get(r.id) ?? 0, tags.get(r.id)));
  }

  async getSubnet(subnetId: string) {
    const [subnet] = await this.describeSubnets({ subnetIds: [subnetId] });
    if (!subnet) throw subnetNotFound(subnetId);
    return subnet;
  }

  async modifySubnet(subnetId: string, input: { mapPublicIpOnLaunch: boolean }) {
    const { count } = await this.ctx.db.subnet.updateMany({
      where: { id: subnetId },
      data: { mapPublicIpOnLaunch: input.mapPublicIpOnLaunch },
    });
    if (!count) throw subnetNotFound(subnetId);
    return this.getSubnet(subnetId);
  }

  async deleteSubnet(subnetId: string) {
    await this.serialized(() =>
      this.ctx.db.$transaction(async (tx) => {
        const subnet = await tx.subnet.findUnique({ where: { id: subnetId } });
        if (!subnet) throw subnetNotFound(subnetId);
        if (subnet.defaultForAz) {
          throw new CloudError(
            'OperationNotPermitted',
            `${subnetId} is the default subnet; launches without a subnet go there, so it stays.`,
          );
        }
        const instances = await countLiveInstances(tx, { subnetId });
        if (instances) {
          throw errors.dependency(
            `The subnet '${subnetId}' has dependencies and cannot be deleted: ${instances} instance(s).`,
          );
        }
        await tx.subnet.delete({ where: { id: subnetId } });
        await deleteTags(tx, subnetId);
      }),
    );
    await requestNetworkApply(this.ctx, `delete ${subnetId}`);
    return { subnetId, deleted: true };
  }

  // --------------------------------------------------- internet gateways

  async createGateway(input: { tags?: TagInput }) {
    const gateway = await this.ctx.db.$transaction(async (tx) => {
      const row = await tx.internetGateway.create({ data: { id: newId('internetGateway') } });
      await writeTags(tx, row.id, input.tags);
      return row;
    });
    return presentGateway(gateway, (await readTags(this.ctx.db, [gateway.id])).get(gateway.id));
  }

  async describeGateways(ids?: string[]) {
    const rows = await this.ctx.db.internetGateway.findMany({
      where: ids ? { id: { in: ids } } : {},
      orderBy: { createdAt: 'asc' },
    });
    return presentTagged(this.ctx.db, rows, presentGateway);
  }

  async getGateway(id: string) {
    const [gateway] = await this.describeGateways([id]);
    if (!gateway) throw gatewayNotFound(id);
    return gateway;
  }

  async attachGateway(id: string, vpcId: string) {
    await this.serialized(() =>
      this.ctx.db.$transaction(async (tx) => {
        const gateway = await tx.internetGateway.findUnique({ where: { id } });
        if (!gateway) throw gatewayNotFound(id);
        const vpc = await tx.vpc.findUnique({ where: { id: vpcId }, include: { gateway: true } });
        if (!vpc) throw vpcNotFound(vpcId);
        if (gateway.vpcId === vpcId) return;
        if (gateway.vpcId) {
          throw new CloudError(
            'Resource.AlreadyAssociated',
            `The internet gateway ${id} is already attached to ${gateway.vpcId}.`,
          );
        }
        if (vpc.gateway) {
          throw new CloudError(
            'Resource.AlreadyAssociated',
            `${vpcId} already has internet gateway ${vpc.gateway.id} attached.`,
          );
        }
        await tx.internetGateway.update({ where: { id }, data: { vpcId } });
      }),
    );
    await requestNetworkApply(this.ctx, `attach ${id} to ${vpcId}`);
    return this.getGateway(id);
  }

  async detachGateway(id: string, vpcId: string) {
    await this.serialized(() =>
      this.ctx.db.$transaction(async (tx) => {
        const gateway = await tx.internetGateway.findUnique({ where: { id } });
        if (!gateway) throw gatewayNotFound(id);
        if (gateway.vpcId !== vpcId) {
          throw new CloudError(
            'Gateway.NotAttached',
            `The internet gateway ${id} is not attached to ${vpcId}.`,
          );
        }
        const mapped = await tx.elasticIp.count({ where: { vpcId, instanceId: { not: null } } });
        if (mapped) {
          throw errors.dependency(
            `Network ${vpcId} has ${mapped} mapped public address(es); disassociate them before detaching the gateway.`,
          );
        }
        await tx.internetGateway.update({ where: { id }, data: { vpcId: null } });
      }),
    );
    await requestNetworkApply(this.ctx, `detach ${id} from ${vpcId}`);
    return this.getGateway(id);
  }

  async deleteGateway(id: string) {
    await this.serialized(() =>
      this.ctx.db.$transaction(async (tx) => {
        const gateway = await tx.internetGateway.findUnique({ where: { id } });
        if (!gateway) throw gatewayNotFound(id);
        if (gateway.vpcId) {
          throw errors.dependency(
            `The internet gateway '${id}' is attached to ${gateway.vpcId}; detach it first.`,
          );
        }
        await tx.internetGateway.delete({ where: { id } });
        await deleteTags(tx, id);
      }),
    );
    return { internetGatewayId: id, deleted: true };
  }

  // ------------------------------------------------------- bootstrap

  /**
   * The default VPC, as in every EC2 region: created once (CIDR from the settings) with a
   * default subnet covering it and an attached internet gateway.
   */
  async ensureDefaultVpc(): Promise<{ vpcId: string; subnetId: string; created: boolean }> {
    const { db, settings } = this.ctx;
    let created = false;
    let vpc = await db.vpc.findFirst({ where: { isDefault: true }, include: { subnets: true } });
    if (!vpc) {
      const cidr = checkVpcCidr(settings.defaultVpcCidr);
      try {
        await this.serialized(async () => {
          await this.assertFreeForVpc(cidr);
          await this.createDefaultVpc(newId('vpc'), cidr);
        });
        created = true;
      } catch (e) {
        // Another process (an API and a worker starting together) may have made it first: the
        // partial unique index allows one default VPC.
        if (!(await db.vpc.findFirst({ where: { isDefault: true } }))) throw e;
      }
      vpc = await db.vpc.findFirst({ where: { isDefault: true }, include: { subnets: true } });
    }
    const subnet = vpc!.subnets.find((s) => s.defaultForAz) ?? vpc!.subnets[0];
    if (!subnet) throw new Error(`the default VPC ${vpc!.id} has no subnet`);
    await this.backfillSecurityGroups();
    if (created) await requestNetworkApply(this.ctx, `create default ${vpc!.id}`);
    return { vpcId: vpc!.id, subnetId: subnet.id, created };
  }

  private async createDefaultVpc(id: string, cidr: string): Promise<void> {
    await this.ctx.db.$transaction(async (tx: Tx) => {
      await tx.vpc.create({
        data: {
          id,
          cidrBlock: cidr,
          bridgeKey: vpcBridgeKey(id),
          isDefault: true,
          state: 'pending',
        },
      });
      await tx.subnet.create({
        data: {
          id: newId('subnet'),
          vpcId: id,
          cidrBlock: cidr,
          defaultForAz: true,
          state: 'pending',
        },
      });
      await tx.internetGateway.create({ data: { id: newId('internetGateway'), vpcId: id } });
      await ensureDefaultGroup(tx, id);
    });
  }

  /**
   * Every VPC has its default security group, and every instance launched before security
   * groups existed is in it.
   */
  private async backfillSecurityGroups(): Promise<void> {
    const { db } = this.ctx;
    const bare = await db.vpc.findMany({
      where: {
        NOT: {
          id: {
            in: (await db.securityGroup.findMany({ where: { isDefault: true } })).map(
              (g) => g.vpcId,
            ),
          },
        },
      },
      select: { id: true },
    });
    for (const v of bare) await db.$transaction((tx) => ensureDefaultGroup(tx, v.id));
    const loose = await db.instance.findMany({
      where: {
        state: { not: 'terminated' },
        securityGroups: { none: {} },
        vpcId: { not: 'default' },
      },
      select: { id: true, vpcId: true },
    });
    if (!loose.length) return;
    const defaults = await db.securityGroup.findMany({ where: { isDefault: true } });
    const byVpc = new Map(defaults.map((g) => [g.vpcId, g.id]));
    await db.instanceSecurityGroup.createMany({
      data: loose.flatMap((i) =>
        byVpc.has(i.vpcId) ? [{ instanceId: i.id, groupId: byVpc.get(i.vpcId)!, position: 0 }] : [],
      ),
    });
  }
}
