import { newId } from '@minicloud/domain';
import { startApiOnly } from '@minicloud/testkit/api-harness';

/**
 * GET /v1/instances is one hand-written SQL statement per database (SQLite's json_group_array,
 * PostgreSQL's json_agg). This suite runs in both integration projects: every filter must select
 * the same instances, and each listed instance must look exactly like GET /v1/instances/{id},
 * which is built from plain Prisma queries.
 */
describe('describe instances: the fast path agrees with the Prisma path', () => {
  let h: Awaited<ReturnType<typeof startApiOnly>>;
  const ids: Record<'web' | 'db', string> = { web: '', db: '' };

  beforeAll(async () => {
    h = await startApiOnly({ networkCidr: '10.250.2.0/24' });
    const imageId = newId('image');
    await h.db.image.create({
      data: {
        id: imageId,
        name: 'describe-image',
        state: 'available',
        source: '/dev/null',
        format: 'qcow2',
        path: '/nonexistent/x.qcow2',
        virtualSize: 1n << 30n,
      },
    });
    for (const tier of ['web', 'db'] as const) {
      const r = await h.client.runInstances({
        imageId,
        instanceType: 't3.micro',
        tags: { Name: `describe-${tier}`, Tier: tier },
      });
      ids[tier] = r.instances[0].instanceId;
    }
  });
  afterAll(async () => {
    await h?.close();
  });

  const listed = async (query: string) =>
    (await h.client.describeInstances(query)).instances.map((i) => i.instanceId as string);

  it('lists every instance in launch order, each as the single-instance view shows it', async () => {
    const { instances } = await h.client.describeInstances();
    expect(instances.map((i) => i.instanceId)).toEqual([ids.web, ids.db]);
    for (const described of instances) {
      const single = await h.client.describeInstance(described.instanceId);
      expect(described).toEqual(single);
    }
    const web = instances[0];
    expect(web.tags).toEqual([
      { key: 'Name', value: 'describe-web' },
      { key: 'Tier', value: 'web' },
    ]);
    expect(web.blockDeviceMappings).toHaveLength(1);
    expect(web.blockDeviceMappings[0].ebs.deleteOnTermination).toBe(true);
    expect(web.securityGroups).toHaveLength(1);
    expect(new Date(web.launchTime).toISOString()).toBe(web.launchTime);
  });

  it('filters by id, state, VPC, subnet and tags alike on each database', async () => {
    const both = `instanceId=${ids.web},${ids.db}`;
    const { vpcId, subnetId } = h.defaultVpc;
    expect(await listed(`?instanceId=${ids.db}`)).toEqual([ids.db]);
    expect(await listed(`?${both}&state=pending`)).toEqual([ids.web, ids.db]);
    expect(await listed(`?${both}&state=running,stopped`)).toEqual([]);
    expect(await listed(`?${both}&vpcId=${vpcId}`)).toEqual([ids.web, ids.db]);
    expect(await listed(`?${both}&vpcId=vpc-00000000000000000`)).toEqual([]);
    expect(await listed(`?${both}&subnetId=${subnetId}`)).toEqual([ids.web, ids.db]);
    expect(await listed('?tag:Tier=db')).toEqual([ids.db]);
    expect(await listed('?tag:Tier=web,db')).toEqual([ids.web, ids.db]);
    expect(await listed('?tag:Tier=')).toEqual([ids.web, ids.db]);
    expect(await listed('?tag:Tier=web&tag:Name=describe-db')).toEqual([]);
    expect(await listed('?tag:Missing=')).toEqual([]);
    expect(await listed(`?${both}&maxResults=1`)).toEqual([ids.web]);
  });
});
