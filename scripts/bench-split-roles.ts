/**
 * The API and the worker as separate processes on one SQLite file (a benchmark, not a test):
 * launches (2 per request) and rule authorize/revoke pairs from concurrent clients while the
 * worker launches on libvirt's test:///default driver, then every instance terminated. Prints
 * the answers by status and the log lines of database errors (SQLITE_BUSY, internal errors).
 *   MINICLOUD_TEST_IMAGE=/var/cache/minicloud/test-image.qcow2 \
 *     node --import tsx scripts/bench-split-roles.ts
 */
import { startMinicloud } from '@minicloud/testkit/minicloud-process';

const mc = await startMinicloud({
  role: 'split',
  extraEnv: {
    MINICLOUD_LIBVIRT_URI: 'test:///default',
    MINICLOUD_VIRT_TYPE: 'test',
    MINICLOUD_WORKER_CONCURRENCY: '16',
    MINICLOUD_RECONCILE_INTERVAL_SECONDS: '1',
  },
});
const statuses: Record<number, number> = {};
const count = (status: number) => (statuses[status] = (statuses[status] ?? 0) + 1);
try {
  let [image] = (await mc.client.call('GET', '/v1/images')).images;
  while (image.state !== 'available') {
    await new Promise((r) => setTimeout(r, 200));
    image = await mc.client.call('GET', `/v1/images/${image.imageId}`);
  }
  const group = (
    await mc.client.call('POST', '/v1/security-groups', { groupName: 'g', description: 'g' })
  ).groupId;
  const ids: string[] = [];
  const t0 = Date.now();
  await Promise.all([
    ...Array.from({ length: 6 }, async () => {
      for (let i = 0; i < 4; i++) {
        const r = await mc.client.request('POST', '/v1/instances', {
          imageId: image.imageId,
          instanceType: 't3.nano',
          minCount: 2,
          maxCount: 2,
        });
        count(r.status);
        if (r.status < 300) ids.push(...r.body.instances.map((x: any) => x.instanceId));
      }
    }),
    ...Array.from({ length: 4 }, async (_, k) => {
      for (let i = 0; i < 15; i++) {
        const port = 1000 + k * 100 + i;
        const rules = [{ ipProtocol: 'tcp', fromPort: port, toPort: port, cidrIpv4: '0.0.0.0/0' }];
        const path = `/v1/security-groups/${group}/ingress`;
        count((await mc.client.request('POST', path, { rules })).status);
        count((await mc.client.request('POST', `${path}/revoke`, { rules })).status);
      }
    }),
  ]);
  // Terminate everything while the worker may still be launching.
  await Promise.all(
    ids.map(async (id) => count((await mc.client.request('DELETE', `/v1/instances/${id}`)).status)),
  );
  const errors = mc
    .logs()
    .split('\n')
    .filter((l) => /SQLITE_BUSY|internal error/.test(l));
  console.log(
    `split roles: ${ids.length} instances launched and terminated in ${Date.now() - t0} ms; statuses ${JSON.stringify(statuses)}; database error log lines: ${errors.length}`,
  );
  for (const line of errors.slice(0, 5)) console.log(line.slice(0, 300));
} finally {
  await mc.destroy();
}
