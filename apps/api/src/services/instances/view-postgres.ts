import type { Db } from '@minicloud/db';

export interface InstanceListQuery {
  instanceIds?: string[];
  states?: string[];
  vpcId?: string;
  subnetId?: string;
  tags?: ReadonlyMap<string, string[]>;
}

/** A timestamp(3) as the ISO text SQLite stores and JavaScript writes (UTC, milliseconds, Z). */
const iso = (column: string) => `to_char(${column}, 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

/**
 * PostgreSQL's twin of describeInstances' SQLite statement: the same rows as ONE JSON text
 * (json_agg), lists bound as one JSON parameter each (jsonb_array_elements_text).
 */
export async function instanceListJsonPostgres(db: Db, query: InstanceListQuery): Promise<string> {
  const where: string[] = [];
  const params: unknown[] = [];
  const bind = (value: unknown) => {
    params.push(value);
    return `$${params.length}`;
  };
  const inList = (values: string[]) =>
    `(SELECT jsonb_array_elements_text(${bind(JSON.stringify(values))}::jsonb))`;
  if (query.instanceIds) where.push(`i.id IN ${inList(query.instanceIds)}`);
  if (query.states) where.push(`i.state IN ${inList(query.states)}`);
  if (query.vpcId) where.push(`i.network = ${bind(query.vpcId)}`);
  if (query.subnetId) where.push(`i."subnetId" = ${bind(query.subnetId)}`);
  for (const [key, values] of query.tags ?? []) {
    where.push(
      `EXISTS (SELECT 1 FROM "Tag" f WHERE f."resourceId" = i.id AND f.key = ${bind(key)}` +
        (values.length ? ` AND f.value IN ${inList(values)}` : '') +
        ')',
    );
  }
  const [result] = await db.$queryRawUnsafe<{ rows: string | null }[]>(
    `SELECT json_agg(json_build_object(
              'id', i.id, 'reservationId', i."reservationId", 'imageId', i."imageId",
              'instanceType', i."instanceType", 'vcpus', i.vcpus, 'memoryMiB', i."memoryMiB",
              'keyName', i."keyName", 'state', i.state, 'stateReason', i."stateReason",
              'privateIp', i."privateIp", 'macAddress', i."macAddress",
              'amiLaunchIndex', i."amiLaunchIndex", 'launchTime', ${iso('i."launchTime"')},
              'terminatedAt', ${iso('i."terminatedAt"')}, 'vpcId', i.network,
              'subnetId', i."subnetId", 'networkInterfaceId', i."networkInterfaceId",
              'publicIp', e."publicIp", 'allocationId', e.id, 'associationId', e."associationId",
              'tags', (SELECT coalesce(json_agg(json_build_object('key', t.key, 'value', t.value)
                         ORDER BY t.key), '[]')
                         FROM "Tag" t WHERE t."resourceId" = i.id),
              'mappings', (SELECT coalesce(json_agg(json_build_object('deviceName', v.device,
                   'ebs', json_build_object('volumeId', v.id, 'status', v."attachState",
                     'attachTime', ${iso('v."attachTime"')},
                     'deleteOnTermination', v."deleteOnTermination")) ORDER BY v.device), '[]')
                 FROM "Volume" v WHERE v."instanceId" = i.id AND v.state <> 'deleted'),
              'groups', (SELECT coalesce(json_agg(json_build_object('groupId', m."groupId",
                   'groupName', g."groupName") ORDER BY m.position), '[]')
                 FROM "InstanceSecurityGroup" m JOIN "SecurityGroup" g ON g.id = m."groupId"
                WHERE m."instanceId" = i.id)
            ) ORDER BY i."launchTime")::text AS rows
       FROM "Instance" i
       LEFT JOIN "ElasticIp" e ON e."instanceId" = i.id
       ${where.length ? `WHERE ${where.join(' AND ')}` : ''}`,
    ...params,
  );
  return result?.rows ?? '[]';
}
