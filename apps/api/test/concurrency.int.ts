/**
 * Many identical or competing requests at once (issue 11): the one-at-a-time guarantees hold
 * whatever the interleaving. The API against real SQLite and Redis; no worker.
 */
import { newId } from '@minicloud/domain';
import { addAvailableImage, startApiOnly } from '@minicloud/testkit/api-harness';

type Harness = Awaited<ReturnType<typeof startApiOnly>>;

const T = 120_000;

describe('concurrent requests against real SQLite and Redis', () => {
  let h: Harness;
  let imageId: string;
  beforeAll(async () => {
    // A /22: room for every launch below.
    h = await startApiOnly({ networkCidr: '10.248.0.0/22' });
    imageId = await addAvailableImage(h.db, 1024 ** 3);
  }, T);
  afterAll(async () => {
    await h?.close();
  });

  const expectNo5xx = (statuses: number[]) => expect(statuses.filter((s) => s >= 500)).toEqual([]);

  test(
    '50 concurrent launches: 50 instances, no private address or MAC twice',
    async () => {
      const results = await Promise.all(
        Array.from({ length: 50 }, () =>
          h.client.request('POST', '/v1/instances', { imageId, instanceType: 't3.nano' }),
        ),
      );
      expectNo5xx(results.map((r) => r.status));
      expect(results.map((r) => r.status)).toEqual(Array(50).fill(202));
      const rows = await h.db.instance.findMany({ select: { privateIp: true, macAddress: true } });
      expect(rows).toHaveLength(50);
      expect(new Set(rows.map((r) => r.privateIp)).size).toBe(50);
      expect(new Set(rows.map((r) => r.macAddress)).size).toBe(50);
      const leases = await h.db.addressLease.findMany({ select: { ip: true } });
      expect(new Set(leases.map((l) => l.ip)).size).toBe(leases.length);
    },
    T,
  );

  test(
    '100 concurrent launches with one client token: one reservation, every answer the same',
    async () => {
      const before = await h.db.instance.count();
      const body = { imageId, instanceType: 't3.nano', clientToken: `tok-${newId('image')}` };
      const results = await Promise.all(
        Array.from({ length: 100 }, () => h.client.request('POST', '/v1/instances', body)),
      );
      expectNo5xx(results.map((r) => r.status));
      expect(new Set(results.map((r) => r.status))).toEqual(new Set([202]));
      const reservations = new Set(results.map((r) => r.body.reservationId));
      const instanceIds = new Set(results.map((r) => r.body.instances[0].instanceId));
      expect(reservations.size).toBe(1);
      expect(instanceIds.size).toBe(1);
      expect(await h.db.instance.count()).toBe(before + 1);
      expect(await h.db.reservation.count({ where: { clientToken: body.clientToken } })).toBe(1);
    },
    T,
  );

  test(
    '20 concurrent attaches of one volume: exactly one is accepted',
    async () => {
      const launched = await h.client.call('POST', '/v1/instances', {
        imageId,
        instanceType: 't3.nano',
        minCount: 20,
      });
      const ids: string[] = launched.instances.map((i: any) => i.instanceId);
      await h.db.instance.updateMany({ where: { id: { in: ids } }, data: { state: 'running' } });
      const v = await h.client.call('POST', '/v1/volumes', { size: 1 });
      await h.db.volume.update({ where: { id: v.volumeId }, data: { state: 'available' } });
      const results = await Promise.all(
        ids.map((instanceId) =>
          h.client.request('POST', `/v1/volumes/${v.volumeId}/attach`, {
            instanceId,
            device: '/dev/sdf',
          }),
        ),
      );
      expectNo5xx(results.map((r) => r.status));
      const accepted = results.filter((r) => r.status === 202 || r.status === 200);
      expect(accepted).toHaveLength(1);
      for (const r of results.filter((x) => x !== accepted[0])) {
        expect(r.status).toBe(409);
        expect(r.body.error.code).toBe('VolumeInUse');
      }
      const row = await h.db.volume.findUnique({ where: { id: v.volumeId } });
      expect(row?.instanceId).toBe(accepted[0]!.body.instanceId);
    },
    T,
  );
});
