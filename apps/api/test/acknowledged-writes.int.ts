import { newId } from '@minicloud/domain';
import { startApiOnly } from '@minicloud/testkit/api-harness';
import { testDatabaseKind } from '@minicloud/testkit/postgres';

type Harness = Awaited<ReturnType<typeof startApiOnly>>;

/**
 * The state store's first promise under concurrency: transactions that fail on purpose (a launch
 * refused inside its reserving transaction, a duplicate rule, a DependencyViolation) never take
 * other requests' acknowledged writes with them, and no reader ever sees their uncommitted rows.
 */
describe('acknowledged writes under failing transactions (real SQLite)', () => {
  let h: Harness;
  let imageId: string;
  let webGroup: string;
  let referencedGroup: string;

  beforeAll(async () => {
    h = await startApiOnly({ networkCidr: '10.251.0.0/22', yieldBeforeQueries: true });
    imageId = newId('image');
    await h.db.image.create({
      data: {
        id: imageId,
        name: 'race-image',
        state: 'available',
        source: '/dev/null',
        path: '/x',
      },
    });
    webGroup = (
      await h.client.call('POST', '/v1/security-groups', { groupName: 'web', description: 'web' })
    ).groupId;
    await h.client.call('POST', `/v1/security-groups/${webGroup}/ingress`, {
      rules: [{ ipProtocol: 'tcp', fromPort: 22, toPort: 22, cidrIpv4: '0.0.0.0/0' }],
    });
    // A rule of `web` references this group, so deleting it is a DependencyViolation.
    referencedGroup = (
      await h.client.call('POST', '/v1/security-groups', { groupName: 'ref', description: 'ref' })
    ).groupId;
    await h.client.call('POST', `/v1/security-groups/${webGroup}/ingress`, {
      rules: [{ ipProtocol: 'tcp', fromPort: 80, toPort: 80, referencedGroupId: referencedGroup }],
    });
  });
  afterAll(async () => {
    await h?.close();
  });

  it('keeps every 2xx write and never shows a rolled-back row', async () => {
    const rounds = 25;
    const statuses = new Map<number, number>();
    const keyPairs: string[] = [];
    const volumes: string[] = [];
    const launched: string[] = [];
    const seenInstances = new Set<string>();
    const count = (status: number) => statuses.set(status, (statuses.get(status) ?? 0) + 1);
    const send = async (method: string, path: string, body?: unknown) => {
      const r = await h.client.request(method, path, body);
      count(r.status);
      return r;
    };

    let reading = true;
    const readers = Array.from({ length: 2 }, async () => {
      while (reading) {
        const r = await send('GET', '/v1/instances');
        for (const i of r.body?.instances ?? []) seenInstances.add(i.instanceId);
      }
    });

    for (let round = 0; round < rounds; round++) {
      await Promise.all([
        // Fails inside the reserving transaction, after its instance rows are written.
        ...Array.from({ length: 3 }, async () => {
          const r = await send('POST', '/v1/instances', {
            imageId,
            instanceType: 't3.nano',
            maxCount: 3,
            securityGroupIds: [newId('securityGroup')],
          });
          expect(r.status).toBe(404);
        }),
        (async () => {
          const r = await send('POST', `/v1/security-groups/${webGroup}/ingress`, {
            rules: [{ ipProtocol: 'tcp', fromPort: 22, toPort: 22, cidrIpv4: '0.0.0.0/0' }],
          });
          expect(r.status).toBe(409);
        })(),
        (async () => {
          const r = await send('DELETE', `/v1/security-groups/${referencedGroup}`);
          expect(r.body?.error?.code).toBe('DependencyViolation');
        })(),
        // Acknowledged writes: plain (key pairs) and transactional (volumes, launches).
        ...Array.from({ length: 4 }, async (_, i) => {
          const keyName = `race-${round}-${i}`;
          const r = await send('POST', '/v1/key-pairs', { keyName });
          if (r.status === 201) keyPairs.push(keyName);
        }),
        (async () => {
          const r = await send('POST', '/v1/volumes', { size: 1 });
          if (r.status < 300) volumes.push(r.body.volumeId);
        })(),
        (async () => {
          const r = await send('POST', '/v1/instances', { imageId, instanceType: 't3.nano' });
          if (r.status < 300) launched.push(...r.body.instances.map((i: any) => i.instanceId));
        })(),
      ]);
    }
    reading = false;
    await Promise.all(readers);

    const storedKeys = await h.db.keyPair.count({ where: { name: { in: keyPairs } } });
    const storedVolumes = await h.db.volume.count({ where: { id: { in: volumes } } });
    const storedLaunches = await h.db.instance.count({ where: { id: { in: launched } } });
    const stored = await h.db.instance.findMany({ select: { id: true } });
    const storedIds = new Set(stored.map((i) => i.id));
    const phantoms = [...seenInstances].filter((id) => !storedIds.has(id));
    const acknowledged = keyPairs.length + volumes.length + launched.length;
    console.log(
      `acknowledged ${acknowledged} writes, stored ${storedKeys + storedVolumes + storedLaunches}` +
        ` (key pairs ${storedKeys}/${keyPairs.length}, volumes ${storedVolumes}/${volumes.length},` +
        ` launches ${storedLaunches}/${launched.length}); uncommitted instances seen: ${phantoms.length};` +
        ` statuses ${JSON.stringify(Object.fromEntries(statuses))}`,
    );

    expect([...statuses.keys()].filter((s) => s >= 500)).toEqual([]);
    expect(keyPairs).toHaveLength(rounds * 4);
    expect(storedKeys).toBe(keyPairs.length);
    expect(storedVolumes).toBe(volumes.length);
    expect(storedLaunches).toBe(launched.length);
    expect(launched).toHaveLength(rounds);
    expect(phantoms).toEqual([]);
    // Failed launches left nothing behind either.
    expect(stored).toHaveLength(rounds);
  });
});

// SQLite has one writer at a time; PostgreSQL's row versions let other writes through.
const describeOnSqlite = testDatabaseKind() === 'sqlite' ? describe : describe.skip;

describeOnSqlite('a database that stays busy (real SQLite)', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startApiOnly({ lockWaitMs: 300 });
  });
  afterAll(async () => {
    await h?.close();
  });

  it('answers 503 ServiceUnavailable past the bounded wait, keeps reads working, then recovers', async () => {
    let started!: () => void;
    let finish!: () => void;
    const inside = new Promise<void>((r) => (started = r));
    const gate = new Promise<void>((r) => (finish = r));
    // Another writer holds the database's write lock (a long transaction).
    const holder = h.db.$transaction(
      async (tx) => {
        await tx.tag.create({ data: { resourceId: 'holder', key: 'k', value: 'v' } });
        started();
        await gate;
      },
      { timeout: 60_000 },
    );
    await inside;
    const refused = await h.client.request('POST', '/v1/key-pairs', { keyName: 'busy' });
    const read = await h.client.request('GET', '/v1/key-pairs');
    finish();
    await holder;
    expect(refused.status).toBe(503);
    expect(refused.body.error.code).toBe('ServiceUnavailable');
    expect(read.status).toBe(200);
    expect(await h.db.keyPair.count({ where: { name: 'busy' } })).toBe(0);
    const retried = await h.client.request('POST', '/v1/key-pairs', { keyName: 'busy' });
    expect(retried.status).toBe(201);
  });
});
