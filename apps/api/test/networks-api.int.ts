import { newId } from '@minicloud/domain';
import { startApiOnly } from '@minicloud/testkit/api-harness';
import { NetworkService } from '../src/services/networks.js';
import { expectRefused } from '@minicloud/testkit/expect-errors';

type Harness = Awaited<ReturnType<typeof startApiOnly>>;

async function seedImage(h: Harness) {
  const id = newId('image');
  await h.db.image.create({
    data: { id, name: 'net-image', state: 'available', source: '/dev/null', path: '/x.qcow2' },
  });
  return id;
}

/** Row counts of everything a network request could change. */
async function counts(h: Harness) {
  const db = h.db;
  const [vpcs, subnets, gateways, attached, pools, addresses, associated, instances, leases, tags] =
    await Promise.all([
      db.vpc.count(),
      db.subnet.count(),
      db.internetGateway.count(),
      db.internetGateway.count({ where: { vpcId: { not: null } } }),
      db.publicIpv4Pool.count(),
      db.elasticIp.count(),
      db.elasticIp.count({ where: { instanceId: { not: null } } }),
      db.instance.count(),
      db.addressLease.count(),
      db.tag.count(),
    ]);
  return {
    vpcs,
    subnets,
    gateways,
    attached,
    pools,
    addresses,
    associated,
    instances,
    leases,
    tags,
  };
}

describe('VPC, subnet, internet gateway and Elastic IP API (real SQLite and Redis)', () => {
  let h: Harness;
  let imageId: string;
  // Random second octets so parallel runs never matter (each harness has its own database).
  const vpcCidr = '10.61.0.0/16';

  beforeAll(async () => {
    h = await startApiOnly({ networkCidr: '10.60.0.0/24' });
    imageId = await seedImage(h);
  });
  afterAll(async () => {
    await h?.close();
  });

  /** A request that must fail with `status`/`code` and leave every count as it was. */
  const refused = (method: string, path: string, body: unknown, status: number, code: string) =>
    expectRefused(h.client, () => counts(h), { method, path, body }, status, code);

  it('has a default VPC with a default subnet and an attached internet gateway', async () => {
    const { vpcs } = await h.client.call('GET', '/v1/vpcs');
    expect(vpcs).toHaveLength(1);
    expect(vpcs[0]).toMatchObject({ cidrBlock: '10.60.0.0/24', isDefault: true });
    expect(vpcs[0].vpcId).toMatch(/^vpc-[0-9a-f]{17}$/);
    expect(vpcs[0].internetGatewayId).toMatch(/^igw-[0-9a-f]{17}$/);
    const { subnets } = await h.client.call('GET', `/v1/subnets?vpcId=${vpcs[0].vpcId}`);
    expect(subnets).toHaveLength(1);
    // 256 addresses, 5 reserved by EC2's rules.
    expect(subnets[0]).toMatchObject({ defaultForAz: true, availableIpAddressCount: 251 });
    // Starts that race (an API and a worker process) end with one default VPC; a later start
    // finds it and creates nothing.
    const again = await Promise.all(
      [1, 2, 3].map(() =>
        new NetworkService({ db: h.db, queue: h.queue, settings: h.settings }).ensureDefaultVpc(),
      ),
    );
    expect(again.map((r) => r.vpcId)).toEqual([vpcs[0].vpcId, vpcs[0].vpcId, vpcs[0].vpcId]);
    expect(again.some((r) => r.created)).toBe(false);
    expect(await counts(h)).toMatchObject({ vpcs: 1, subnets: 1, gateways: 1 });
    await refused('DELETE', `/v1/vpcs/${vpcs[0].vpcId}`, undefined, 400, 'OperationNotPermitted');
  });

  it('refuses malformed, oversized, public and overlapping VPC blocks and changes nothing', async () => {
    const cases: [string, number, string][] = [
      ['10.0.0.0/33', 400, 'InvalidParameterValue'],
      ['10.0.0.300/16', 400, 'InvalidParameterValue'],
      ['ten.0.0.0/16', 400, 'InvalidParameterValue'],
      ['10.61.0.5/16', 400, 'InvalidParameterValue'],
      ['10.0.0.0/15', 400, 'InvalidVpc.Range'],
      ['10.0.0.0/29', 400, 'InvalidVpc.Range'],
      ['8.8.0.0/16', 400, 'InvalidVpc.Range'],
      ['10.60.0.128/25', 400, 'InvalidVpc.Range'], // inside the default VPC
    ];
    for (const [cidrBlock, status, code] of cases)
      await refused('POST', '/v1/vpcs', { cidrBlock }, status, code);
    await refused(
      'POST',
      '/v1/vpcs',
      { cidrBlock: vpcCidr, extra: 1 },
      400,
      'InvalidParameterValue',
    );
  });

  let vpcId: string;
  let subnetA: string;
  let subnetSmall: string;

  it('creates a VPC and subnets inside it, with exact free-address counts', async () => {
    const vpc = await h.client.call('POST', '/v1/vpcs', {
      cidrBlock: vpcCidr,
      tags: { Name: 'test-vpc' },
    });
    expect(vpc).toMatchObject({ cidrBlock: vpcCidr, isDefault: false, internetGatewayId: null });
    expect(vpc.tags).toEqual([{ key: 'Name', value: 'test-vpc' }]);
    vpcId = vpc.vpcId;
    await refused('POST', '/v1/vpcs', { cidrBlock: '10.61.128.0/17' }, 400, 'InvalidVpc.Range');

    const a = await h.client.call('POST', '/v1/subnets', { vpcId, cidrBlock: '10.61.1.0/24' });
    expect(a).toMatchObject({ vpcId, availableIpAddressCount: 251, mapPublicIpOnLaunch: false });
    subnetA = a.subnetId;
    const small = await h.client.call('POST', '/v1/subnets', { vpcId, cidrBlock: '10.61.2.0/28' });
    expect(small.availableIpAddressCount).toBe(11);
    subnetSmall = small.subnetId;

    await refused(
      'POST',
      '/v1/subnets',
      { vpcId, cidrBlock: '10.62.0.0/24' },
      400,
      'InvalidSubnet.Range',
    );
    await refused(
      'POST',
      '/v1/subnets',
      { vpcId, cidrBlock: '10.61.1.128/25' },
      400,
      'InvalidSubnet.Conflict',
    );
    await refused(
      'POST',
      '/v1/subnets',
      { vpcId, cidrBlock: '10.61.3.0/29' },
      400,
      'InvalidSubnet.Range',
    );
    await refused(
      'POST',
      '/v1/subnets',
      { vpcId, cidrBlock: '10.61.3.0/24x' },
      400,
      'InvalidParameterValue',
    );
    await refused(
      'POST',
      '/v1/subnets',
      { vpcId: newId('vpc'), cidrBlock: '10.61.4.0/24' },
      404,
      'InvalidVpcID.NotFound',
    );
    await refused('DELETE', `/v1/vpcs/${vpcId}`, undefined, 409, 'DependencyViolation');
  });

  it('launches into a subnet with a chosen or the lowest free address and shows the interface', async () => {
    const launch = (extra: Record<string, unknown>) =>
      h.client.request('POST', '/v1/instances', { imageId, instanceType: 't3.nano', ...extra });
    const r = await launch({ subnetId: subnetA, privateIpAddress: '10.61.1.50' });
    expect(r.status).toBe(202);
    const instance = r.body.instances[0];
    expect(instance).toMatchObject({
      vpcId,
      subnetId: subnetA,
      privateIpAddress: '10.61.1.50',
      publicIpAddress: null,
    });
    expect(instance.networkInterfaces).toEqual([
      {
        networkInterfaceId: expect.stringMatching(/^eni-[0-9a-f]{17}$/),
        macAddress: instance.macAddress,
        privateIpAddress: '10.61.1.50',
        subnetId: subnetA,
        vpcId,
        status: 'in-use',
        groups: [{ groupId: expect.stringMatching(/^sg-[0-9a-f]{17}$/), groupName: 'default' }],
        association: null,
      },
    ]);
    const lowest = await launch({ subnetId: subnetA });
    expect(lowest.body.instances[0].privateIpAddress).toBe('10.61.1.4'); // .1-.3 are reserved
    expect((await h.client.call('GET', `/v1/subnets/${subnetA}`)).availableIpAddressCount).toBe(
      249,
    );
    const listed = await h.client.call('GET', `/v1/instances?subnetId=${subnetA}`);
    expect(listed.instances.map((i: any) => i.privateIpAddress).sort()).toEqual([
      '10.61.1.4',
      '10.61.1.50',
    ]);

    const bad = (extra: Record<string, unknown>, status: number, code: string) =>
      refused(
        'POST',
        '/v1/instances',
        { imageId, instanceType: 't3.nano', ...extra },
        status,
        code,
      );
    await bad({ subnetId: subnetA, privateIpAddress: '10.61.1.50' }, 409, 'InvalidIPAddress.InUse');
    await bad({ subnetId: subnetA, privateIpAddress: '10.61.2.5' }, 400, 'InvalidParameterValue');
    await bad({ subnetId: subnetA, privateIpAddress: '10.61.1.1' }, 400, 'InvalidParameterValue');
    await bad({ subnetId: subnetA, privateIpAddress: '10.61.1.255' }, 400, 'InvalidParameterValue');
    await bad({ subnetId: subnetA, privateIpAddress: '10.61.1.999' }, 400, 'InvalidParameterValue');
    await bad(
      { subnetId: subnetA, privateIpAddress: '10.61.1.60', maxCount: 2 },
      400,
      'InvalidParameterCombination',
    );
    await bad({ subnetId: newId('subnet') }, 404, 'InvalidSubnetID.NotFound');
    await refused('DELETE', `/v1/subnets/${subnetA}`, undefined, 409, 'DependencyViolation');
  });

  it('gives 20 concurrent launches into a /28 distinct addresses or InsufficientFreeAddressesInSubnet', async () => {
    const answers = await Promise.all(
      Array.from({ length: 20 }, () =>
        h.client.request('POST', '/v1/instances', {
          imageId,
          instanceType: 't3.nano',
          subnetId: subnetSmall,
        }),
      ),
    );
    const ok = answers.filter((a) => a.status === 202);
    const full = answers.filter((a) => a.status !== 202);
    expect(ok).toHaveLength(11);
    for (const f of full) {
      expect(f.status).toBe(409);
      expect(f.body.error.code).toBe('InsufficientFreeAddressesInSubnet');
    }
    const ips = ok.map((a) => a.body.instances[0].privateIpAddress as string);
    expect(new Set(ips).size).toBe(11);
    const hosts = ips.map((ip) => Number(ip.split('.')[3])).sort((x, y) => x - y);
    expect(hosts).toEqual([4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]);
    expect((await h.client.call('GET', `/v1/subnets/${subnetSmall}`)).availableIpAddressCount).toBe(
      0,
    );
  });

  let igwId: string;
  it('attaches one internet gateway per VPC and refuses the rest', async () => {
    const igw = await h.client.call('POST', '/v1/internet-gateways', {});
    expect(igw.attachments).toEqual([]);
    igwId = igw.internetGatewayId;
    const attached = await h.client.call('POST', `/v1/internet-gateways/${igwId}/attach`, {
      vpcId,
    });
    expect(attached.attachments).toEqual([{ vpcId, state: 'available' }]);
    expect((await h.client.call('GET', `/v1/vpcs/${vpcId}`)).internetGatewayId).toBe(igwId);

    const other = await h.client.call('POST', '/v1/internet-gateways', {});
    await refused(
      'POST',
      `/v1/internet-gateways/${other.internetGatewayId}/attach`,
      { vpcId },
      400,
      'Resource.AlreadyAssociated',
    );
    const defaultVpc = h.defaultVpc.vpcId;
    await refused(
      'POST',
      `/v1/internet-gateways/${igwId}/attach`,
      { vpcId: defaultVpc },
      400,
      'Resource.AlreadyAssociated',
    );
    await refused(
      'POST',
      `/v1/internet-gateways/${igwId}/detach`,
      { vpcId: defaultVpc },
      400,
      'Gateway.NotAttached',
    );
    await refused(
      'DELETE',
      `/v1/internet-gateways/${igwId}`,
      undefined,
      409,
      'DependencyViolation',
    );
    await refused(
      'POST',
      `/v1/internet-gateways/${newId('internetGateway')}/attach`,
      { vpcId },
      404,
      'InvalidInternetGatewayID.NotFound',
    );
    expect(
      (await h.client.request('DELETE', `/v1/internet-gateways/${other.internetGatewayId}`)).status,
    ).toBe(200);
  });

  let poolId: string;
  it('keeps public pools apart from each other and from every VPC', async () => {
    await refused(
      'POST',
      '/v1/public-ipv4-pools',
      { cidr: '10.61.200.0/28' },
      400,
      'InvalidParameterValue',
    );
    await refused(
      'POST',
      '/v1/public-ipv4-pools',
      { firstIp: '198.51.100.20', lastIp: '198.51.100.10' },
      400,
      'InvalidParameterValue',
    );
    const pool = await h.client.call('POST', '/v1/public-ipv4-pools', { cidr: '198.51.100.16/30' });
    expect(pool).toMatchObject({
      firstIp: '198.51.100.16',
      lastIp: '198.51.100.19',
      totalAddressCount: 4,
    });
    poolId = pool.poolId;
    await refused(
      'POST',
      '/v1/public-ipv4-pools',
      { firstIp: '198.51.100.19', lastIp: '198.51.100.25' },
      400,
      'InvalidParameterValue',
    );
    // A VPC may no longer take those addresses either (198.51.100.0/24 is not private anyway,
    // so check with a private pool).
    const privatePool = await h.client.call('POST', '/v1/public-ipv4-pools', {
      cidr: '172.31.250.0/28',
    });
    await refused('POST', '/v1/vpcs', { cidrBlock: '172.31.0.0/16' }, 400, 'InvalidVpc.Range');
    expect(
      (await h.client.request('DELETE', `/v1/public-ipv4-pools/${privatePool.poolId}`)).status,
    ).toBe(200);
  });

  it('allocates, associates, moves, disassociates and releases Elastic IPs', async () => {
    const [i1, i2] = (await h.client.call('GET', `/v1/instances?subnetId=${subnetA}`)).instances;
    const eip = await h.client.call('POST', '/v1/addresses', {});
    expect(eip).toMatchObject({ publicIp: '198.51.100.16', associationId: null, instanceId: null });
    expect(eip.allocationId).toMatch(/^eipalloc-[0-9a-f]{17}$/);
    await refused(
      'POST',
      '/v1/addresses',
      { address: '198.51.100.16' },
      409,
      'InvalidAddress.InUse',
    );
    await refused(
      'POST',
      '/v1/addresses',
      { address: '198.51.100.300' },
      400,
      'InvalidParameterValue',
    );
    await refused(
      'POST',
      '/v1/addresses',
      { address: '203.0.113.9' },
      400,
      'InvalidAddress.NotFound',
    );
    await refused(
      'POST',
      '/v1/addresses',
      { publicIpv4Pool: newId('publicIpv4Pool') },
      404,
      'InvalidPublicIpv4PoolID.NotFound',
    );

    const assoc = await h.client.call('POST', `/v1/addresses/${eip.allocationId}/associate`, {
      instanceId: i1.instanceId,
    });
    expect(assoc).toMatchObject({
      instanceId: i1.instanceId,
      privateIpAddress: i1.privateIpAddress,
      vpcId,
    });
    expect(assoc.associationId).toMatch(/^eipassoc-[0-9a-f]{17}$/);
    const shown = await h.client.call('GET', `/v1/instances/${i1.instanceId}`);
    expect(shown.publicIpAddress).toBe('198.51.100.16');
    expect(shown.networkInterfaces[0].association).toEqual({
      publicIp: '198.51.100.16',
      allocationId: eip.allocationId,
      associationId: assoc.associationId,
    });
    const listed = await h.client.call('GET', `/v1/instances?instanceId=${i1.instanceId}`);
    expect(listed.instances[0].publicIpAddress).toBe('198.51.100.16');

    // Moving needs allowReassociation; then i1 has no public address any more.
    await refused(
      'POST',
      `/v1/addresses/${eip.allocationId}/associate`,
      { instanceId: i2.instanceId },
      409,
      'Resource.AlreadyAssociated',
    );
    const moved = await h.client.call('POST', `/v1/addresses/${eip.allocationId}/associate`, {
      instanceId: i2.instanceId,
      allowReassociation: true,
    });
    expect(moved.instanceId).toBe(i2.instanceId);
    expect(
      (await h.client.call('GET', `/v1/instances/${i1.instanceId}`)).publicIpAddress,
    ).toBeNull();

    // A second address for i2 replaces the first one's association.
    const second = await h.client.call('POST', '/v1/addresses', {});
    await h.client.call('POST', `/v1/addresses/${second.allocationId}/associate`, {
      instanceId: i2.instanceId,
    });
    expect(
      (await h.client.call('GET', `/v1/addresses/${eip.allocationId}`)).associationId,
    ).toBeNull();
    expect((await h.client.call('GET', `/v1/instances/${i2.instanceId}`)).publicIpAddress).toBe(
      second.publicIp,
    );

    await refused(
      'DELETE',
      `/v1/addresses/${second.allocationId}`,
      undefined,
      409,
      'InvalidIPAddress.InUse',
    );
    await refused(
      'POST',
      `/v1/internet-gateways/${igwId}/detach`,
      { vpcId },
      409,
      'DependencyViolation',
    );
    // Not in a VPC with a gateway (the small subnet's VPC has one; make a VPC without).
    const bare = await h.client.call('POST', '/v1/vpcs', { cidrBlock: '10.63.0.0/24' });
    const bareSubnet = await h.client.call('POST', '/v1/subnets', {
      vpcId: bare.vpcId,
      cidrBlock: '10.63.0.0/24',
    });
    const lonely = (
      await h.client.call('POST', '/v1/instances', {
        imageId,
        instanceType: 't3.nano',
        subnetId: bareSubnet.subnetId,
      })
    ).instances[0];
    await refused(
      'POST',
      `/v1/addresses/${eip.allocationId}/associate`,
      { instanceId: lonely.instanceId },
      400,
      'Gateway.NotAttached',
    );
    // A terminated instance takes no address.
    await h.db.instance.update({ where: { id: lonely.instanceId }, data: { state: 'terminated' } });
    await refused(
      'POST',
      `/v1/addresses/${eip.allocationId}/associate`,
      { instanceId: lonely.instanceId },
      409,
      'IncorrectInstanceState',
    );
    await refused(
      'POST',
      `/v1/addresses/${eip.allocationId}/associate`,
      { instanceId: newId('instance') },
      404,
      'InvalidInstanceID.NotFound',
    );

    await h.client.call('POST', `/v1/addresses/${second.allocationId}/disassociate`);
    expect(
      (await h.client.call('GET', `/v1/instances/${i2.instanceId}`)).publicIpAddress,
    ).toBeNull();
    for (const a of [eip, second])
      expect((await h.client.request('DELETE', `/v1/addresses/${a.allocationId}`)).status).toBe(
        200,
      );
    await refused(
      'GET',
      `/v1/addresses/${eip.allocationId}`,
      undefined,
      404,
      'InvalidAllocationID.NotFound',
    );
    expect(
      (await h.client.call('POST', `/v1/internet-gateways/${igwId}/detach`, { vpcId })).attachments,
    ).toEqual([]);
  });

  it('gives a public address at launch in a subnet with mapPublicIpOnLaunch, while the pool lasts', async () => {
    const subnet = await h.client.call('POST', '/v1/subnets', {
      vpcId,
      cidrBlock: '10.61.9.0/24',
      mapPublicIpOnLaunch: true,
    });
    const r = await h.client.call('POST', '/v1/instances', {
      imageId,
      instanceType: 't3.nano',
      subnetId: subnet.subnetId,
      minCount: 4,
    });
    const publics = r.instances.map((i: any) => i.publicIpAddress).sort();
    expect(publics).toEqual(['198.51.100.16', '198.51.100.17', '198.51.100.18', '198.51.100.19']);
    const auto = await h.db.elasticIp.findMany({ where: { autoAssigned: true } });
    expect(auto).toHaveLength(4);
    // The pool (4 addresses) is now empty: launches and allocations say so and change nothing.
    await refused(
      'POST',
      '/v1/instances',
      { imageId, instanceType: 't3.nano', subnetId: subnet.subnetId },
      409,
      'InsufficientAddressCapacity',
    );
    await refused('POST', '/v1/addresses', {}, 409, 'InsufficientAddressCapacity');
    await refused(
      'POST',
      `/v1/addresses/${auto[0]!.id}/disassociate`,
      undefined,
      400,
      'InvalidAddress.Locked',
    );
    await refused(
      'DELETE',
      `/v1/public-ipv4-pools/${poolId}`,
      undefined,
      409,
      'DependencyViolation',
    );
  });

  it('deletes subnets and VPCs once nothing uses them', async () => {
    // Terminated instances no longer hold their subnet (the worker releases their addresses).
    await h.db.instance.updateMany({ where: { vpcId }, data: { state: 'terminated' } });
    await h.db.addressLease.deleteMany({ where: { network: vpcId } });
    for (const s of (await h.client.call('GET', `/v1/subnets?vpcId=${vpcId}`)).subnets)
      expect((await h.client.request('DELETE', `/v1/subnets/${s.subnetId}`)).status).toBe(200);
    expect(await h.client.call('DELETE', `/v1/vpcs/${vpcId}`)).toEqual({ vpcId, deleted: true });
    await refused('GET', `/v1/vpcs/${vpcId}`, undefined, 404, 'InvalidVpcID.NotFound');
    await refused('DELETE', `/v1/vpcs/${vpcId}`, undefined, 404, 'InvalidVpcID.NotFound');
  });
});
