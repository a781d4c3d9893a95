import { jobIds } from '@minicloud/queue';
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import {
  CloudError,
  diskTargetForDevice,
  errors,
  type InstanceAction,
  type InstanceState,
  isInstanceState,
  macForInstance,
  newId,
  planTransition,
  ROOT_DEVICE_NAME,
  stateOf,
} from '@minicloud/domain';
import { isUniqueViolation, type Tx } from '@minicloud/db';
import type { RunInstancesInput } from '@minicloud/contracts';
import type { ElasticIp, Instance, Subnet } from '@prisma/client';
import type { ServiceContext } from './context.js';
import type { InstanceTypeService } from './instance-types.js';
import type { KeyPairService } from './key-pairs.js';
import type { VolumeService } from './volumes.js';
import { readTags } from './tags.js';
import { allocateFromPools } from './addresses.js';
import { requestNetworkApply } from './networks.js';
import { allocateSubnetAddresses, checkRequestedAddress } from './network-rules.js';
import { resolveInstanceGroups } from './security-groups.js';

type Presented = ReturnType<typeof presentInstance>;

type InstanceListRow = Pick<
  Instance,
  | 'id'
  | 'reservationId'
  | 'imageId'
  | 'instanceType'
  | 'vcpus'
  | 'memoryMiB'
  | 'keyName'
  | 'state'
  | 'stateReason'
  | 'privateIp'
  | 'macAddress'
  | 'amiLaunchIndex'
  | 'vpcId'
  | 'subnetId'
  | 'networkInterfaceId'
> & {
  launchTime: string;
  terminatedAt: string | null;
  tags: { key: string; value: string }[];
  mappings: BlockDeviceMappingView[];
  publicIp: string | null;
  allocationId: string | null;
  associationId: string | null;
  groups: GroupView[];
};

type PresentableInstance = Omit<
  InstanceListRow,
  | 'tags'
  | 'mappings'
  | 'launchTime'
  | 'terminatedAt'
  | 'publicIp'
  | 'allocationId'
  | 'associationId'
  | 'groups'
> & {
  launchTime: Date;
};

type PublicAddress = Pick<ElasticIp, 'publicIp' | 'id' | 'associationId'> | null;

export function presentInstance(
  i: PresentableInstance,
  tags: { key: string; value: string }[] = [],
  blockDeviceMappings: BlockDeviceMappingView[] = [],
  publicAddress: PublicAddress = null,
  securityGroups: GroupView[] = [],
) {
  const association = publicAddress
    ? {
        publicIp: publicAddress.publicIp,
        allocationId: publicAddress.id,
        associationId: publicAddress.associationId,
      }
    : null;
  // A terminated instance has no interface any more (as EC2 shows it).
  const attached = i.state !== 'terminated' && i.networkInterfaceId !== null;
  return {
    instanceId: i.id,
    reservationId: i.reservationId,
    imageId: i.imageId,
    instanceType: i.instanceType,
    state: stateOf(i.state),
    stateReason: i.stateReason,
    privateIpAddress: i.privateIp,
    publicIpAddress: association?.publicIp ?? null,
    macAddress: i.macAddress,
    vpcId: i.vpcId,
    subnetId: i.subnetId,
    securityGroups,
    networkInterfaces: attached
      ? [
          {
            networkInterfaceId: i.networkInterfaceId,
            macAddress: i.macAddress,
            privateIpAddress: i.privateIp,
            subnetId: i.subnetId,
            vpcId: i.vpcId,
            status: 'in-use',
            groups: securityGroups,
            association,
          },
        ]
      : [],
    keyName: i.keyName,
    launchTime: i.launchTime.toISOString(),
    amiLaunchIndex: i.amiLaunchIndex,
    cpuOptions: { vcpus: i.vcpus },
    memoryMiB: i.memoryMiB,
    rootDeviceName: ROOT_DEVICE_NAME,
    blockDeviceMappings,
    tags,
  };
}

/** Block device mappings of many instances in one query. */
async function readMappings(db: ServiceContext['db'], instanceIds: string[]) {
  const rows = await db.volume.findMany({
    where: { instanceId: { in: instanceIds }, state: { not: 'deleted' } },
    orderBy: { device: 'asc' },
  });
  const byInstance = new Map<string, BlockDeviceMappingView[]>();
  for (const v of rows) {
    const list = byInstance.get(v.instanceId!) ?? [];
    list.push({
      deviceName: v.device!,
      ebs: {
        volumeId: v.id,
        status: v.attachState,
        attachTime: v.attachTime?.toISOString() ?? null,
        deleteOnTermination: v.deleteOnTermination,
      },
    });
    byInstance.set(v.instanceId!, list);
  }
  return byInstance;
}

interface GroupView {
  groupId: string;
  groupName: string;
}

/** The security groups of many instances in one query, in the order they were given. */
async function readGroups(db: ServiceContext['db'], instanceIds: string[]) {
  const rows = await db.instanceSecurityGroup.findMany({
    where: { instanceId: { in: instanceIds } },
    orderBy: { position: 'asc' },
    include: { group: { select: { groupName: true } } },
  });
  const byInstance = new Map<string, GroupView[]>();
  for (const r of rows) {
    const list = byInstance.get(r.instanceId) ?? [];
    list.push({ groupId: r.groupId, groupName: r.group.groupName });
    byInstance.set(r.instanceId, list);
  }
  return byInstance;
}

/** The public address (Elastic IP or one given at launch) of many instances in one query. */
async function readPublicAddresses(db: ServiceContext['db'], instanceIds: string[]) {
  const rows = await db.elasticIp.findMany({ where: { instanceId: { in: instanceIds } } });
  return new Map(rows.map((r) => [r.instanceId!, r]));
}

function normalizedMappings(list: BlockDeviceMappingView[]): BlockDeviceMappingView[] {
  return list.map((m) => ({
    deviceName: m.deviceName,
    ebs: {
      ...m.ebs,
      attachTime: m.ebs.attachTime ? new Date(m.ebs.attachTime).toISOString() : null,
      deleteOnTermination: Boolean(m.ebs.deleteOnTermination),
    },
  }));
}

const MAX_LAUNCH_ATTEMPTS = 8;

type PlannedVolume = Awaited<ReturnType<VolumeService['planVolume']>> & {
  device: string;
  deleteOnTermination: boolean;
  isRoot: boolean;
};

export interface BlockDeviceMappingView {
  deviceName: string;
  ebs: {
    volumeId: string;
    status: string | null;
    attachTime: string | null;
    deleteOnTermination: boolean;
  };
}

export class InstanceService {
  constructor(
    private readonly ctx: ServiceContext,
    private readonly types: InstanceTypeService,
    private readonly keyPairs: KeyPairService,
    private readonly volumes: VolumeService,
  ) {}

  async run(input: RunInstancesInput) {
    const { db, settings } = this.ctx;
    const maxCount = input.maxCount ?? input.minCount;
    if (maxCount < input.minCount) {
      throw errors.invalidParameter('maxCount must be greater than or equal to minCount.');
    }
    const image = await db.image.findUnique({ where: { id: input.imageId } });
    if (!image || image.state === 'deregistered' || image.state === 'deregistering') {
      throw errors.notFound(
        'InvalidAMIID.NotFound',
        `The image id '${input.imageId}' does not exist.`,
      );
    }
    if (image.state !== 'available') {
      throw new CloudError(
        'InvalidAMIID.Unavailable',
        `The image '${image.id}' is ${image.state}.`,
        400,
      );
    }
    const type = await this.types.find(input.instanceType);
    if (!type) {
      throw errors.invalidParameter(`The instance type '${input.instanceType}' does not exist.`);
    }
    if (type.gpus > settings.gpuDevices.length) {
      throw new CloudError(
        'Unsupported',
        `The instance type '${type.instanceType}' needs ${type.gpus} GPU(s) and this host has none configured.`,
        400,
      );
    }
    let publicKey: string | null = null;
    if (input.keyName !== undefined) {
      const key = await this.keyPairs.findByName(input.keyName);
      if (!key)
        throw errors.notFound(
          'InvalidKeyPair.NotFound',
          `The key pair '${input.keyName}' does not exist.`,
        );
      publicKey = key.publicKey;
    }
    if (input.userData !== undefined) {
      const bytes = Buffer.from(input.userData, 'base64').length;
      if (bytes > settings.maxUserDataBytes) {
        throw errors.invalidParameter(
          `userData is ${bytes} bytes; the limit is ${settings.maxUserDataBytes} bytes.`,
        );
      }
    }

    const subnet = await this.launchSubnet(input.subnetId);
    if (input.privateIpAddress !== undefined && maxCount > 1) {
      throw new CloudError(
        'InvalidParameterCombination',
        'privateIpAddress can only be given when launching one instance.',
      );
    }

    const volumes = await this.planLaunchVolumes(
      input,
      image.virtualSize === null ? 1 : Number(image.virtualSize),
    );

    const { clientToken, ...rest } = input;
    const requestHash = createHash('sha256')
      .update(JSON.stringify(canonical(rest)))
      .digest('hex');
    if (clientToken) {
      const existing = await this.byClientToken(clientToken, requestHash);
      if (existing) return existing;
    }

    for (let attempt = 1; ; attempt++) {
      try {
        const reservationId = await db.$transaction((tx) =>
          this.reserve(tx, {
            input,
            maxCount,
            requestHash,
            publicKey,
            vcpus: type.vcpus,
            memoryMiB: type.memoryMiB,
            volumes,
            subnet,
          }),
        );
        if (subnet.mapPublicIpOnLaunch)
          await requestNetworkApply(this.ctx, `public addresses of ${reservationId}`);
        return await this.enqueueLaunches(reservationId);
      } catch (e) {
        if (clientToken && isUniqueViolation(e, 'clientToken')) {
          // Another request with the same token won the race: answer as it did.
          const existing = await this.byClientToken(clientToken, requestHash);
          if (existing) return existing;
        }
        // Two launches picked the same free address: the primary key refused one; try again.
        // (An address asked for by the caller is checked again and reported as in use.)
        if (isUniqueViolation(e) && attempt < MAX_LAUNCH_ATTEMPTS) continue;
        throw e;
      }
    }
  }

  private async reserve(
    tx: Tx,
    a: {
      input: RunInstancesInput;
      maxCount: number;
      requestHash: string;
      publicKey: string | null;
      vcpus: number;
      memoryMiB: number;
      volumes: PlannedVolume[];
      subnet: Subnet;
    },
  ): Promise<string> {
    const { subnet } = a;
    const leases = await tx.addressLease.findMany({
      where: { subnetId: subnet.id },
      select: { ip: true },
    });
    const taken = new Set(leases.map((l) => l.ip));
    const ips =
      a.input.privateIpAddress !== undefined
        ? [checkRequestedAddress(subnet.cidrBlock, a.input.privateIpAddress, taken)]
        : allocateSubnetAddresses(subnet.cidrBlock, taken, a.maxCount);
    if (ips.length < a.input.minCount) {
      throw errors.insufficientCapacity(
        'InsufficientFreeAddressesInSubnet',
        `The subnet ${subnet.id} (${subnet.cidrBlock}) has ${ips.length} free address(es); ${a.input.minCount} requested.`,
      );
    }
    const reservationId = newId('reservation');
    await tx.reservation.create({
      data: {
        id: reservationId,
        clientToken: a.input.clientToken ?? null,
        requestHash: a.requestHash,
      },
    });
    // One statement per table, whatever the count: a 50-instance launch is a few milliseconds.
    const now = new Date();
    const instances = ips.map((ip, index) => {
      const id = newId('instance');
      return {
        id,
        reservationId,
        imageId: a.input.imageId,
        instanceType: a.input.instanceType,
        vcpus: a.vcpus,
        memoryMiB: a.memoryMiB,
        keyName: a.input.keyName ?? null,
        publicKey: a.publicKey,
        state: 'pending',
        privateIp: ip,
        macAddress: macForInstance(id),
        vpcId: subnet.vpcId,
        subnetId: subnet.id,
        networkInterfaceId: newId('networkInterface'),
        userData: a.input.userData ?? null,
        amiLaunchIndex: index,
      };
    });
    await tx.instance.createMany({ data: instances });
    const groupIds = await resolveInstanceGroups(tx, subnet.vpcId, a.input.securityGroupIds);
    await tx.instanceSecurityGroup.createMany({
      data: instances.flatMap((i) =>
        groupIds.map((groupId, position) => ({ instanceId: i.id, groupId, position })),
      ),
    });
    await tx.addressLease.createMany({
      data: instances.map((i) => ({
        network: subnet.vpcId,
        subnetId: subnet.id,
        ip: i.privateIp,
        mac: i.macAddress,
        instanceId: i.id,
      })),
    });
    if (subnet.mapPublicIpOnLaunch) {
      for (const i of instances) {
        await allocateFromPools(
          tx,
          { autoAssigned: true },
          { instanceId: i.id, privateIp: i.privateIp, vpcId: subnet.vpcId },
        );
      }
    }
    const tags = Object.entries(a.input.tags ?? {});
    if (tags.length) {
      await tx.tag.createMany({
        data: instances.flatMap((i) =>
          tags.map(([key, value]) => ({ resourceId: i.id, key, value })),
        ),
      });
    }
    await tx.volume.createMany({
      data: instances.flatMap((i) =>
        a.volumes.map(({ device, deleteOnTermination, isRoot, ...plan }) => ({
          id: newId('volume'),
          ...plan,
          isRoot,
          imageId: isRoot ? a.input.imageId : null,
          state: 'creating',
          instanceId: i.id,
          device,
          target: isRoot ? 'vda' : diskTargetForDevice(device),
          attachState: 'attaching',
          attachTime: now,
          deleteOnTermination,
        })),
      ),
    });
    return reservationId;
  }

  /** The subnet a launch goes into: the given one, else the default VPC's default subnet. */
  private async launchSubnet(subnetId: string | undefined): Promise<Subnet> {
    const { db } = this.ctx;
    if (subnetId !== undefined) {
      const subnet = await db.subnet.findUnique({ where: { id: subnetId } });
      if (!subnet) {
        throw errors.notFound(
          'InvalidSubnetID.NotFound',
          `The subnet ID '${subnetId}' does not exist.`,
        );
      }
      return subnet;
    }
    const subnet = await db.subnet.findFirst({
      where: { defaultForAz: true, vpc: { isDefault: true } },
    });
    if (!subnet) {
      throw new CloudError(
        'VPCIdNotSpecified',
        'There is no default VPC with a default subnet; give subnetId.',
      );
    }
    return subnet;
  }

  /** The root volume (from the image, or as the /dev/xvda mapping says) and data volumes. */
  private async planLaunchVolumes(
    input: RunInstancesInput,
    imageBytes: number,
  ): Promise<PlannedVolume[]> {
    const imageGiB = Math.max(1, Math.ceil(imageBytes / 1024 ** 3));
    const mappings = input.blockDeviceMappings ?? [];
    const devices = new Set<string>();
    for (const m of mappings) {
      const key =
        m.deviceName === '/dev/sda1'
          ? ROOT_DEVICE_NAME
          : m.deviceName.replace('/dev/xvd', '/dev/sd');
      if (devices.has(key))
        throw errors.invalidParameter(`Device ${m.deviceName} is mapped twice.`);
      devices.add(key);
    }
    const rootMapping = mappings.find(
      (m) => m.deviceName === ROOT_DEVICE_NAME || m.deviceName === '/dev/sda1',
    );
    if (rootMapping?.ebs.snapshotId) {
      throw errors.invalidParameter(
        'The root volume comes from the image; snapshotId is not supported for it.',
      );
    }
    if (rootMapping?.ebs.volumeSize !== undefined && rootMapping.ebs.volumeSize < imageGiB) {
      throw errors.invalidParameter(
        `The root volume must be at least the image's ${imageGiB} GiB.`,
      );
    }
    const root = await this.volumes.planVolume({
      size: rootMapping?.ebs.volumeSize ?? imageGiB,
      volumeType: rootMapping?.ebs.volumeType ?? 'gp3',
      iops: rootMapping?.ebs.iops,
      throughput: rootMapping?.ebs.throughput,
    });
    const planned: PlannedVolume[] = [
      {
        ...root,
        device: ROOT_DEVICE_NAME,
        deleteOnTermination: rootMapping?.ebs.deleteOnTermination ?? true,
        isRoot: true,
      },
    ];
    for (const m of mappings) {
      if (m === rootMapping) continue;
      const plan = await this.volumes.planVolume({
        size: m.ebs.volumeSize,
        volumeType: m.ebs.volumeType,
        iops: m.ebs.iops,
        throughput: m.ebs.throughput,
        snapshotId: m.ebs.snapshotId,
      });
      planned.push({
        ...plan,
        device: m.deviceName,
        deleteOnTermination: m.ebs.deleteOnTermination,
        isRoot: false,
      });
    }
    return planned;
  }

  private async byClientToken(clientToken: string, requestHash: string) {
    const reservation = await this.ctx.db.reservation.findUnique({ where: { clientToken } });
    if (!reservation) return null;
    if (reservation.requestHash !== requestHash) throw errors.idempotentMismatch();
    return this.enqueueLaunches(reservation.id);
  }

  /** Enqueue (again) the launch of every pending instance of a reservation; job ids dedupe. */
  private async enqueueLaunches(reservationId: string) {
    const instances = await this.ctx.db.instance.findMany({
      where: { reservationId },
      orderBy: { amiLaunchIndex: 'asc' },
    });
    await this.ctx.queue.enqueueMany(
      'instance.launch',
      instances
        .filter((i) => i.state === 'pending' && i.actionSeq === 0)
        .map((i) => ({ payload: { instanceId: i.id }, jobId: jobIds.launch(i.id) })),
    );
    const ids = instances.map((i) => i.id);
    const [tags, mappings, addresses, groups] = await Promise.all([
      readTags(this.ctx.db, ids),
      readMappings(this.ctx.db, ids),
      readPublicAddresses(this.ctx.db, ids),
      readGroups(this.ctx.db, ids),
    ]);
    return {
      reservationId,
      instances: instances.map((i) =>
        presentInstance(
          i,
          tags.get(i.id),
          mappings.get(i.id),
          addresses.get(i.id),
          groups.get(i.id),
        ),
      ),
    };
  }

  async describe(filters: {
    state?: string;
    instanceIds?: string[];
    tags?: Record<string, string[]>;
    vpcId?: string;
    subnetId?: string;
    maxResults?: number;
  }) {
    const { db, settings } = this.ctx;
    const states = filters.state?.split(',').filter(Boolean);
    for (const s of states ?? []) {
      if (!isInstanceState(s)) throw errors.invalidParameter(`Unknown instance state '${s}'.`);
    }
    // The hot read path: one SQL statement with tags aggregated per row. Lists travel as one
    // JSON parameter (json_each), so no filter runs into SQLite's bound-parameter limit.
    const where: string[] = [];
    const params: unknown[] = [];
    if (filters.instanceIds) {
      where.push('i.id IN (SELECT value FROM json_each(?))');
      params.push(JSON.stringify(filters.instanceIds));
    }
    if (states) {
      where.push('i.state IN (SELECT value FROM json_each(?))');
      params.push(JSON.stringify(states));
    }
    if (filters.vpcId) {
      where.push('i.network = ?');
      params.push(filters.vpcId);
    }
    if (filters.subnetId) {
      where.push('i.subnetId = ?');
      params.push(filters.subnetId);
    }
    for (const [key, values] of Object.entries(filters.tags ?? {})) {
      where.push(
        'EXISTS (SELECT 1 FROM Tag f WHERE f.resourceId = i.id AND f.key = ?' +
          (values.length ? ' AND f.value IN (SELECT value FROM json_each(?))' : '') +
          ')',
      );
      params.push(key, ...(values.length ? [JSON.stringify(values)] : []));
    }
    // The whole answer as ONE JSON value: the driver adapter's per-value conversion, not SQLite,
    // is what costs at 1000 rows x 20 columns.
    const [result] = await db.$queryRawUnsafe<{ rows: string | null }[]>(
      `SELECT json_group_array(json_object(
                'id', i.id, 'reservationId', i.reservationId, 'imageId', i.imageId,
                'instanceType', i.instanceType, 'vcpus', i.vcpus, 'memoryMiB', i.memoryMiB,
                'keyName', i.keyName, 'state', i.state, 'stateReason', i.stateReason,
                'privateIp', i.privateIp, 'macAddress', i.macAddress,
                'amiLaunchIndex', i.amiLaunchIndex, 'launchTime', i.launchTime,
                'terminatedAt', i.terminatedAt, 'vpcId', i.network, 'subnetId', i.subnetId,
                'networkInterfaceId', i.networkInterfaceId,
                'publicIp', e.publicIp, 'allocationId', e.id, 'associationId', e.associationId,
                'tags', json((SELECT json_group_array(json_object('key', t.key, 'value', t.value))
                   FROM (SELECT key, value FROM Tag WHERE resourceId = i.id ORDER BY key) t)),
                'mappings', json((SELECT json_group_array(json_object('deviceName', v.device,
                     'ebs', json_object('volumeId', v.id, 'status', v.attachState,
                       'attachTime', v.attachTime, 'deleteOnTermination', v.deleteOnTermination)))
                   FROM (SELECT * FROM Volume WHERE instanceId = i.id AND state != 'deleted'
                          ORDER BY device) v)),
                'groups', json((SELECT json_group_array(json_object('groupId', x.groupId,
                     'groupName', x.groupName))
                   FROM (SELECT m.groupId, g.groupName FROM InstanceSecurityGroup m
                           JOIN SecurityGroup g ON g.id = m.groupId
                          WHERE m.instanceId = i.id ORDER BY m.position) x)))) AS rows
         FROM (SELECT * FROM Instance i
                ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
                ORDER BY i.launchTime) i
         LEFT JOIN ElasticIp e ON e.instanceId = i.id`,
      ...params,
    );
    const rows = JSON.parse(result?.rows ?? '[]') as InstanceListRow[];
    // Aggregation keeps the scan order in practice; sorting again costs little and is certain.
    rows.sort((a, b) => (a.launchTime < b.launchTime ? -1 : a.launchTime > b.launchTime ? 1 : 0));
    const cutoff = Date.now() - settings.terminatedRetentionMs;
    const visible = rows.filter(
      (r) => r.terminatedAt === null || new Date(r.terminatedAt).getTime() > cutoff,
    );
    return visible
      .slice(0, filters.maxResults ?? visible.length)
      .map((r) =>
        presentInstance(
          { ...r, launchTime: new Date(r.launchTime) },
          r.tags,
          normalizedMappings(r.mappings),
          r.publicIp
            ? { publicIp: r.publicIp, id: r.allocationId!, associationId: r.associationId }
            : null,
          r.groups,
        ),
      );
  }

  async get(instanceId: string): Promise<Presented> {
    const instance = await this.ctx.db.instance.findUnique({ where: { id: instanceId } });
    if (!instance) throw instanceNotFound(instanceId);
    const [tags, mappings, addresses, groups] = await Promise.all([
      readTags(this.ctx.db, [instanceId]),
      readMappings(this.ctx.db, [instanceId]),
      readPublicAddresses(this.ctx.db, [instanceId]),
      readGroups(this.ctx.db, [instanceId]),
    ]);
    return presentInstance(
      instance,
      tags.get(instanceId),
      mappings.get(instanceId),
      addresses.get(instanceId),
      groups.get(instanceId),
    );
  }

  /** Apply a lifecycle action: one guarded state change in the database, then one job. */
  async act(instanceId: string, action: InstanceAction, options: { force?: boolean } = {}) {
    const { db, queue } = this.ctx;
    const instance = await db.instance.findUnique({ where: { id: instanceId } });
    if (!instance) throw instanceNotFound(instanceId);
    const previous = instance.state as InstanceState;
    const plan = planTransition(instanceId, previous, action);
    if (plan.kind === 'noop') {
      return { instanceId, previousState: stateOf(previous), currentState: stateOf(previous) };
    }
    const seq = instance.actionSeq + 1;
    // The state in the where clause makes two racing actions on one instance apply only once.
    const { count } = await db.instance.updateMany({
      where: { id: instanceId, state: previous, actionSeq: instance.actionSeq },
      data: {
        state: plan.to,
        actionSeq: seq,
        stateReason: action === 'stop' ? 'User initiated' : instance.stateReason,
      },
    });
    if (count === 0) {
      throw errors.incorrectState(
        `The instance '${instanceId}' changed state concurrently; try again.`,
      );
    }
    const jobId = jobIds.instanceAction(instanceId, action, seq);
    if (action === 'stop') {
      await queue.enqueue('instance.stop', { instanceId, force: options.force ?? false }, jobId);
    } else {
      await queue.enqueue(`instance.${action}`, { instanceId }, jobId);
    }
    return { instanceId, previousState: stateOf(previous), currentState: stateOf(plan.to) };
  }

  /** The last 64 KiB of the serial console, base64 as EC2's GetConsoleOutput. */
  async console(instanceId: string) {
    await this.get(instanceId);
    const path = join(this.ctx.settings.instancesDir, instanceId, 'console.log');
    let output = Buffer.alloc(0);
    try {
      const fh = await open(path, 'r');
      try {
        const { size } = await fh.stat();
        const length = Math.min(size, 64 * 1024);
        output = Buffer.alloc(length);
        await fh.read(output, 0, length, size - length);
      } finally {
        await fh.close();
      }
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    return { instanceId, timestamp: new Date().toISOString(), output: output.toString('base64') };
  }
}

const instanceNotFound = (id: string) =>
  errors.notFound('InvalidInstanceID.NotFound', `The instance ID '${id}' does not exist.`);

/** A stable JSON form of the request (sorted keys) for the client-token comparison. */
function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value as Record<string, unknown>)
        .filter(([, v]) => v !== undefined)
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([k, v]) => [k, canonical(v)]),
    );
  }
  return value;
}
