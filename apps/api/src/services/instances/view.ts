import { ROOT_DEVICE_NAME, errors, isInstanceState, stateOf } from '@minicloud/domain';
import {
  findInstance,
  publicAddressesOfInstances,
  readTags,
  securityGroupsOfInstances,
  sqlDialectOf,
  volumesOfInstances,
  type Db,
  type InstanceGroupView,
  type TagView,
} from '@minicloud/db';
import type { ElasticIp, Instance, Volume } from '@prisma/client';
import type { ServiceContext } from '../context.js';
import { instanceListJsonPostgres, type InstanceListQuery } from './view-postgres.js';

/** How instances look from outside: the presenter, describe (with its filters) and get. */

export interface BlockDeviceMappingView {
  deviceName: string;
  ebs: {
    volumeId: string;
    status: string | null;
    attachTime: string | null;
    deleteOnTermination: boolean;
  };
}

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
  tags: TagView[];
  mappings: BlockDeviceMappingView[];
  publicIp: string | null;
  allocationId: string | null;
  associationId: string | null;
  groups: InstanceGroupView[];
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

export type InstanceView = ReturnType<typeof presentInstance>;

export function presentInstance(
  i: PresentableInstance,
  tags: TagView[] = [],
  blockDeviceMappings: BlockDeviceMappingView[] = [],
  publicAddress: PublicAddress = null,
  securityGroups: InstanceGroupView[] = [],
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

function mappingOf(v: Volume): BlockDeviceMappingView {
  return {
    deviceName: v.device!,
    ebs: {
      volumeId: v.id,
      status: v.attachState,
      attachTime: v.attachTime?.toISOString() ?? null,
      deleteOnTermination: v.deleteOnTermination,
    },
  };
}

/** Instance rows as the API shows them: tags, volumes, public address and groups in 4 queries. */
export async function presentInstances(
  db: ServiceContext['db'],
  instances: Instance[],
): Promise<InstanceView[]> {
  const ids = instances.map((i) => i.id);
  const [tags, volumes, addresses, groups] = await Promise.all([
    readTags(db, ids),
    volumesOfInstances(db, ids),
    publicAddressesOfInstances(db, ids),
    securityGroupsOfInstances(db, ids),
  ]);
  return instances.map((i) =>
    presentInstance(
      i,
      tags.get(i.id),
      volumes.get(i.id)?.map(mappingOf),
      addresses.get(i.id),
      groups.get(i.id),
    ),
  );
}

export const instanceNotFound = (id: string) =>
  errors.notFound('InvalidInstanceID.NotFound', `The instance ID '${id}' does not exist.`);

export async function getInstance(ctx: ServiceContext, instanceId: string): Promise<InstanceView> {
  const instance = await findInstance(ctx.db, instanceId);
  if (!instance) throw instanceNotFound(instanceId);
  const [view] = await presentInstances(ctx.db, [instance]);
  return view!;
}

export interface InstanceFilters {
  state?: string;
  instanceIds?: string[];
  tags?: ReadonlyMap<string, string[]>;
  vpcId?: string;
  subnetId?: string;
  maxResults?: number;
}

/** Describe instances: terminated ones stay visible for the retention period, as in EC2. */
export async function describeInstances(
  ctx: ServiceContext,
  filters: InstanceFilters,
): Promise<InstanceView[]> {
  const { db, settings } = ctx;
  const states = filters.state?.split(',').filter(Boolean);
  if (states?.length === 0) throw errors.invalidParameter('The state filter needs a value.');
  for (const s of states ?? []) {
    if (!isInstanceState(s)) throw errors.invalidParameter(`Unknown instance state '${s}'.`);
  }
  const json =
    sqlDialectOf(db) === 'postgresql'
      ? await instanceListJsonPostgres(db, { ...filters, states })
      : await instanceListJsonSqlite(db, { ...filters, states });
  const rows = JSON.parse(json) as InstanceListRow[];
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

/** The hot read path on SQLite (instanceListJsonPostgres is its PostgreSQL twin). */
async function instanceListJsonSqlite(db: Db, filters: InstanceListQuery): Promise<string> {
  const { states } = filters;
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
  for (const [key, values] of filters.tags ?? []) {
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
  return result?.rows ?? '[]';
}

/** SQLite's JSON gives times as stored and booleans as 0/1: the same shape as presentInstances. */
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
