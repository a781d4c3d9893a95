/**
 * Contention on the state store (a benchmark, not a test): a burst of concurrent writing requests
 * against the API alone on SQLite. Prints the answers by status, how long the burst took, and
 * acknowledged vs stored writes. With --yield every query first yields to the event loop (as over
 * a socket), so transactions stay open while other requests run.
 *   node --import tsx scripts/bench-db-contention.ts [--yield] [requests, default 300]
 */
import { performance } from 'node:perf_hooks';
import { newId } from '@minicloud/domain';
import { startApiOnly } from '@minicloud/testkit/api-harness';

const args = process.argv.slice(2);
const yieldBeforeQueries = args.includes('--yield');
const burst = Number(args.find((a) => /^\d+$/.test(a)) ?? 300);
const h = await startApiOnly({ networkCidr: '10.252.0.0/16', yieldBeforeQueries });
try {
  const imageId = newId('image');
  await h.db.image.create({
    data: { id: imageId, name: 'bench', state: 'available', source: '/x', path: '/x' },
  });
  const statuses: Record<number, number> = {};
  const acknowledged = { keyPairs: [] as string[], instances: [] as string[] };
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: burst }, async (_, i) => {
      const kind = i % 3;
      const r =
        kind === 0
          ? await h.client.request('POST', '/v1/key-pairs', { keyName: `bench-${i}` })
          : kind === 1
            ? await h.client.request('POST', '/v1/instances', { imageId, instanceType: 't3.nano' })
            : await h.client.request('POST', '/v1/instances', {
                imageId,
                instanceType: 't3.nano',
                securityGroupIds: [newId('securityGroup')],
              });
      statuses[r.status] = (statuses[r.status] ?? 0) + 1;
      if (r.status < 300 && kind === 0) acknowledged.keyPairs.push(`bench-${i}`);
      if (r.status < 300 && kind === 1) acknowledged.instances.push(r.body.instances[0].instanceId);
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  const stored =
    (await h.db.keyPair.count({ where: { name: { in: acknowledged.keyPairs } } })) +
    (await h.db.instance.count({ where: { id: { in: acknowledged.instances } } }));
  const total = acknowledged.keyPairs.length + acknowledged.instances.length;
  console.log(
    `burst of ${burst} writing requests${yieldBeforeQueries ? ' (queries yield)' : ''} (1/3 key pairs, 1/3 launches, 1/3 launches failing in their transaction) in ${seconds.toFixed(2)} s: statuses ${JSON.stringify(statuses)}; acknowledged ${total}, stored ${stored}`,
  );
} finally {
  await h.close();
}
