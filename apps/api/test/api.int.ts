import { newId } from '@minicloud/domain';
import { startApiOnly } from '@minicloud/testkit/api-harness';

type Harness = Awaited<ReturnType<typeof startApiOnly>>;

/** Put an available image straight into the database (the import path has its own tests). */
async function seedImage(h: Harness, name = 'test-image') {
  const id = newId('image');
  await h.db.image.create({
    data: {
      id,
      name,
      state: 'available',
      source: '/dev/null',
      format: 'qcow2',
      path: '/nonexistent/x.qcow2',
    },
  });
  return id;
}

async function snapshot(h: Harness) {
  const [instances, leases, reservations, keys, tags] = await Promise.all([
    h.db.instance.count(),
    h.db.addressLease.count(),
    h.db.reservation.count(),
    h.db.keyPair.count(),
    h.db.tag.count(),
  ]);
  return { instances, leases, reservations, keys, tags };
}

describe('API against real SQLite and Redis', () => {
  let h: Harness;
  let imageId: string;
  beforeAll(async () => {
    h = await startApiOnly({ networkCidr: '10.250.0.0/27' });
    imageId = await seedImage(h);
  });
  afterAll(async () => {
    await h?.close();
  });

  it('needs the bearer key on /v1 but not on /healthz', async () => {
    const anonymous = await fetch(`${h.baseUrl}/v1/instances`);
    expect(anonymous.status).toBe(401);
    expect(((await anonymous.json()) as any).error.code).toBe('AuthFailure');
    const wrong = await fetch(`${h.baseUrl}/v1/instances`, {
      headers: { authorization: 'Bearer nope' },
    });
    expect(wrong.status).toBe(401);
    expect((await fetch(`${h.baseUrl}/healthz`)).status).toBe(200);
  });

  it('serves the OpenAPI document', async () => {
    const r = await h.client.request('GET', '/v1/openapi.json');
    expect(r.status).toBe(200);
    expect(Object.keys(r.body.paths)).toContain('/v1/instances/{instanceId}/stop');
  });

  it('creates key pairs, returns the private key once, and refuses duplicates', async () => {
    const created = await h.client.createKeyPair('ci-key');
    expect(created.keyMaterial).toContain('OPENSSH PRIVATE KEY');
    expect(created.keyPairId).toMatch(/^key-[0-9a-f]{17}$/);
    const listed = await h.client.call('GET', '/v1/key-pairs');
    expect(listed.keyPairs).toHaveLength(1);
    expect(JSON.stringify(listed)).not.toContain('PRIVATE KEY');
    const dup = await h.client.request('POST', '/v1/key-pairs', { keyName: 'ci-key' });
    expect(dup.status).toBe(409);
    expect(dup.body.error.code).toBe('InvalidKeyPair.Duplicate');
    const imported = await h.client.call('POST', '/v1/key-pairs/import', {
      keyName: 'imported',
      publicKeyMaterial: Buffer.from(created.publicKey).toString('base64'),
    });
    expect(imported.keyFingerprint).toBe(created.keyFingerprint);
    const rsa = await h.client.createKeyPair('rsa-key', 'rsa');
    expect(rsa.publicKey).toMatch(/^ssh-rsa /);
    expect((await h.client.request('DELETE', '/v1/key-pairs/rsa-key')).status).toBe(200);
    expect((await h.client.request('DELETE', '/v1/key-pairs/rsa-key')).status).toBe(404);
  });

  it('lists instance types across the families, with GPU types marked unsupported here', async () => {
    const { instanceTypes } = await h.client.call('GET', '/v1/instance-types');
    const g4 = instanceTypes.find((t: any) => t.instanceType === 'g4dn.xlarge');
    expect(g4.supported).toBe(false);
    expect(g4.unsupportedReason).toMatch(/GPU/);
    const custom = await h.client.call('POST', '/v1/instance-types', {
      instanceType: 'tiny.nano',
      family: 'general-purpose',
      vcpus: 1,
      memoryMiB: 128,
    });
    expect(custom.builtIn).toBe(false);
    const again = await h.client.request('POST', '/v1/instance-types', {
      instanceType: 'tiny.nano',
      family: 'general-purpose',
      vcpus: 1,
      memoryMiB: 128,
    });
    expect(again.status).toBe(409);
  });

  it.each([
    ['bad JSON', undefined, '{"imageId":', 'MalformedJSON'],
    ['wrong types', { imageId: 5, instanceType: 't3.micro' }, undefined, 'InvalidParameterValue'],
    ['missing image', { instanceType: 't3.micro' }, undefined, 'MissingParameter'],
    [
      'unknown image',
      { imageId: 'ami-00000000000000000', instanceType: 't3.micro' },
      undefined,
      'InvalidAMIID.NotFound',
    ],
    [
      'unknown type',
      { imageId: 'IMAGE', instanceType: 'x9.huge' },
      undefined,
      'InvalidParameterValue',
    ],
    [
      'unknown key',
      { imageId: 'IMAGE', instanceType: 't3.micro', keyName: 'nope' },
      undefined,
      'InvalidKeyPair.NotFound',
    ],
    [
      'bad base64',
      { imageId: 'IMAGE', instanceType: 't3.micro', userData: '@@@' },
      undefined,
      'InvalidParameterValue',
    ],
    [
      'user-data over 16 KiB',
      {
        imageId: 'IMAGE',
        instanceType: 't3.micro',
        userData: Buffer.alloc(16 * 1024 + 1, 'a').toString('base64'),
      },
      undefined,
      'InvalidParameterValue',
    ],
    [
      'shell characters',
      { imageId: 'IMAGE', instanceType: 't3.micro', keyName: 'x;reboot' },
      undefined,
      'InvalidParameterValue',
    ],
    [
      'GPU type without GPU',
      { imageId: 'IMAGE', instanceType: 'g4dn.xlarge' },
      undefined,
      'Unsupported',
    ],
    [
      'minCount > maxCount',
      { imageId: 'IMAGE', instanceType: 't3.micro', minCount: 3, maxCount: 2 },
      undefined,
      'InvalidParameterValue',
    ],
  ])('refuses a launch with %s: 4xx, nothing changed', async (_what, body, raw, code) => {
    const before = await snapshot(h);
    const payload =
      body && JSON.parse(JSON.stringify(body).replace('"IMAGE"', JSON.stringify(imageId)));
    const r = await h.client.request('POST', '/v1/instances', payload, raw);
    expect(r.status).toBeGreaterThanOrEqual(400);
    expect(r.status).toBeLessThan(500);
    expect(r.body.error.code).toBe(code);
    expect(await snapshot(h)).toEqual(before);
  });

  it('refuses image names with path characters and relative sources', async () => {
    for (const body of [
      { name: '../../etc/passwd', source: '/tmp/x.qcow2' },
      { name: 'ok', source: 'x.qcow2' },
      { name: 'ok', source: 'ftp://x' },
      { name: 'ok', source: '/etc/shadow' },
      { name: 'ok', source: '/srv/images/../../etc/shadow' },
    ]) {
      const r = await h.client.request('POST', '/v1/images', body);
      expect(r.status).toBe(400);
    }
    expect(await h.db.image.count()).toBe(1);
  });

  it('launches idempotently with a client token, also when requests race', async () => {
    const body = {
      imageId,
      instanceType: 't3.micro',
      clientToken: 'token-race-1',
      tags: { Name: 'web' },
    };
    const answers = await Promise.all(
      Array.from({ length: 6 }, () => h.client.request('POST', '/v1/instances', body)),
    );
    for (const a of answers) expect(a.status).toBe(202);
    const reservationIds = new Set(answers.map((a) => a.body.reservationId));
    expect(reservationIds.size).toBe(1);
    expect(await h.db.instance.count({ where: { reservationId: [...reservationIds][0] } })).toBe(1);
    const mismatch = await h.client.request('POST', '/v1/instances', {
      ...body,
      instanceType: 't3.small',
    });
    expect(mismatch.status).toBe(409);
    expect(mismatch.body.error.code).toBe('IdempotentParameterMismatch');
    const { instances } = await h.client.describeInstances('?tag:Name=web');
    expect(instances).toHaveLength(1);
    expect(instances[0].tags).toEqual([{ key: 'Name', value: 'web' }]);
    expect(instances[0].state).toEqual({ code: 0, name: 'pending' });
  });

  it('never gives one address to two instances under concurrent launches', async () => {
    // A /27 has 32 addresses; EC2 reserves 5 (.0 .1 .2 .3 and broadcast); earlier tests hold one.
    const answers = await Promise.all(
      Array.from({ length: 40 }, () =>
        h.client.request('POST', '/v1/instances', { imageId, instanceType: 't3.nano' }),
      ),
    );
    const ok = answers.filter((a) => a.status === 202);
    const full = answers.filter((a) => a.status === 409);
    expect(ok.length + full.length).toBe(40);
    expect(ok.length).toBe(26);
    for (const f of full) expect(f.body.error.code).toBe('InsufficientFreeAddressesInSubnet');
    const ips = (await h.db.instance.findMany({ select: { privateIp: true } })).map(
      (i) => i.privateIp,
    );
    expect(new Set(ips).size).toBe(ips.length);
    for (const reserved of ['10.250.0.0', '10.250.0.1', '10.250.0.2', '10.250.0.3', '10.250.0.31'])
      expect(ips).not.toContain(reserved);
  });

  it('applies lifecycle actions only from allowed states', async () => {
    const [instance] = await h.db.instance.findMany({ take: 1 });
    const stop = await h.client.request('POST', `/v1/instances/${instance!.id}/stop`, {});
    expect(stop.status).toBe(409);
    expect(stop.body.error.code).toBe('IncorrectInstanceState');
    const missing = await h.client.request('DELETE', '/v1/instances/i-00000000000000000');
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe('InvalidInstanceID.NotFound');
    const badId = await h.client.request('GET', '/v1/instances/../../etc');
    expect(badId.status).toBeGreaterThanOrEqual(400);
    expect(badId.status).toBeLessThan(500);
    const term = await h.client.call('DELETE', `/v1/instances/${instance!.id}`);
    expect(term.currentState.name).toBe('shutting-down');
    const again = await h.client.call('DELETE', `/v1/instances/${instance!.id}`);
    expect(again.currentState.name).toBe('shutting-down');
  });

  it('refuses to deregister an image that instances use', async () => {
    const r = await h.client.request('DELETE', `/v1/images/${imageId}`);
    expect(r.status).toBe(409);
    expect(r.body.error.code).toBe('DependencyViolation');
  });
});
