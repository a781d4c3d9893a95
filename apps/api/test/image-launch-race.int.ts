/**
 * Deregistering an image while launches reserve it: no instance is ever left on an image that is
 * going away. The API alone against a real SQLite file and the real Redis.
 */
import { newId } from '@minicloud/domain';
import { RunInstancesRequest } from '@minicloud/contracts';
import { startApiOnly } from '@minicloud/testkit/api-harness';
import { createServices } from '../src/services/index.js';
import type { ServiceContext } from '../src/services/context.js';

/** The EC2-like code a promise is refused with (null when it is not). */
async function codeOf(p: Promise<unknown>): Promise<string | null> {
  return p.then(
    () => null,
    (e: { code?: string }) => e.code ?? String(e),
  );
}

let api: Awaited<ReturnType<typeof startApiOnly>>;

beforeAll(async () => {
  api = await startApiOnly({ networkCidr: '10.252.0.0/22' });
});
afterAll(async () => {
  await api?.close();
});

/** An available image (a row only: the API never opens its file). */
async function image(): Promise<string> {
  const id = newId('image');
  await api.db.image.create({
    data: {
      id,
      name: `race-${id}`,
      state: 'available',
      source: '/srv/images/none.qcow2',
      format: 'qcow2',
      path: `/nonexistent/${id}.qcow2`,
      virtualSize: BigInt(64 * 1024 * 1024),
    },
  });
  return id;
}

const context = (db = api.db): ServiceContext => ({ db, queue: api.queue, settings: api.settings });
const launchInput = (imageId: string) =>
  RunInstancesRequest.parse({ imageId, instanceType: 't3.nano' });
const liveInstancesOf = (imageId: string) =>
  api.db.instance.count({ where: { imageId, state: { not: 'terminated' } } });

describe('deregistering an image while launches reserve it', () => {
  it('refuses a launch whose image was deregistered after its checks, before its transaction', async () => {
    const imageId = await image();
    const services = createServices(context());
    // The launch looks up its subnet after checking the image and before reserving: deregister
    // the image right there.
    const db = new Proxy(api.db, {
      get(target, prop) {
        if (prop === 'subnet') {
          return {
            findFirst: async (args: never) => {
              await services.images.deregister(imageId);
              return target.subnet.findFirst(args);
            },
          };
        }
        const value = Reflect.get(target, prop, target) as unknown;
        return typeof value === 'function' ? (value as () => unknown).bind(target) : value;
      },
    });
    const racing = createServices(context(db));
    expect(await codeOf(racing.instances.run(launchInput(imageId)))).toBe('InvalidAMIID.NotFound');
    expect(await liveInstancesOf(imageId)).toBe(0);
    expect((await api.db.image.findUnique({ where: { id: imageId } }))?.state).toBe(
      'deregistering',
    );
  });

  it('ten launches and a deregistration at once: either no instance or no deregistration', async () => {
    for (let round = 0; round < 3; round++) {
      const imageId = await image();
      const services = createServices(context());
      const launches = Array.from({ length: 10 }, () =>
        services.instances.run(launchInput(imageId)),
      );
      const deregister = services.images.deregister(imageId);
      const [dereg, ...launched] = await Promise.allSettled([deregister, ...launches]);
      const state = (await api.db.image.findUnique({ where: { id: imageId } }))?.state;
      const live = await liveInstancesOf(imageId);
      if (dereg!.status === 'fulfilled') {
        expect([state, live]).toEqual(['deregistering', 0]);
      } else {
        expect(await codeOf(deregister)).toBe('DependencyViolation');
        expect(state).toBe('available');
        expect(live).toBe(launched.filter((l) => l.status === 'fulfilled').length);
      }
      for (const l of launched)
        if (l.status === 'rejected')
          expect((l.reason as { code?: string }).code).toMatch(/^InvalidAMIID\./);
    }
  });
});
