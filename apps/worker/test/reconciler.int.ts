/**
 * The reconciler racing launches: a launch whose row is committed after the reconciler read the
 * database keeps its host objects. Real SQLite, real taps (test prefix), libvirt's test driver,
 * the real image store and file volumes under a temp directory; everything is removed in
 * afterAll, also after a failure.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KeyedLock, domainName, macForInstance, newId, tapName } from '@minicloud/domain';
import { ensurePrivateDir, run } from '@minicloud/host';
import { LibvirtHypervisor } from '@minicloud/hypervisor';
import { LinuxNetworkDriver } from '@minicloud/network';
import { FileVolumeDriver, ImageStore } from '@minicloud/storage';
import type { Db } from '@minicloud/db';
import { freshDatabase, testPrefix } from '@minicloud/testkit/api-harness';
import { sweep } from '../../../packages/network/test/int-helpers.js';
import type { WorkerDeps } from '../src/context.js';
import { domainSpecFor, instanceLayout } from '../src/instance-host.js';
import { reconcile } from '../src/reconciler.js';
import { launchInstance } from '../src/jobs/instance-launch.job.js';
import { UnrecoverableError, type Job } from '@minicloud/queue';

const T = 120_000;
const P = testPrefix('mr');
let dir: string;
let db: Db;
let deps: WorkerDeps;
let hypervisor: LibvirtHypervisor;
let imageId: string;
let reservationId: string;
const network = new LinuxNetworkDriver({ arpAnnounce: 'none' });

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), `minicloud-test-${P}-`));
  db = await freshDatabase(dir);
  hypervisor = new LibvirtHypervisor({ uri: 'test:///default' });
  const volumes = new FileVolumeDriver({
    volumesDir: join(dir, 'volumes'),
    snapshotsDir: join(dir, 'snapshots'),
  });
  deps = {
    db,
    queue: null as never, // no instance here is in a state the reconciler re-queues
    hypervisor,
    network,
    images: new ImageStore({ imagesDir: join(dir, 'images') }),
    volumes,
    rootVolumes: volumes,
    locks: new KeyedLock(),
    log: () => {},
    settings: {
      prefix: P,
      virtType: 'test',
      instancesDir: join(dir, 'instances'),
      volumesDir: join(dir, 'volumes'),
      stopTimeoutMs: 1000,
      terminatedRetentionMs: 3600_000,
      networksDir: join(dir, 'networks'),
      uplink: null,
    },
  };
  imageId = newId('image');
  reservationId = newId('reservation');
  await db.image.create({
    data: { id: imageId, name: 'img', state: 'available', source: '/dev/null' },
  });
  await db.reservation.create({ data: { id: reservationId, requestHash: 'x' } });
}, T);

afterAll(async () => {
  for (const d of (await hypervisor?.listDomains(`${P}-`)) ?? []) await hypervisor.undefine(d.name);
  const errors = await sweep(P, []); // taps, and the tables the reconciler's converge made
  await hypervisor?.close();
  await db?.$disconnect();
  if (dir) await rm(dir, { recursive: true, force: true });
  if (errors.length) console.warn(`cleanup problems: ${errors.join('; ')}`);
}, T);

/** What a launch makes: the row (committed first, as the API does), then tap, directory, domain. */
async function launch(state: 'pending' | 'running') {
  const id = newId('instance');
  const row = await db.instance.create({
    data: {
      id,
      reservationId,
      imageId,
      instanceType: 't3.micro',
      vcpus: 1,
      memoryMiB: 512,
      state,
      macAddress: macForInstance(id),
      vpcId: newId('vpc'),
    },
  });
  await run('ip', ['tuntap', 'add', 'dev', tapName(P, id), 'mode', 'tap'], { timeoutMs: 10_000 });
  await ensurePrivateDir(instanceLayout(deps, id).dir);
  await hypervisor.ensureDefined(await domainSpecFor(deps, row, []));
  return id;
}

async function hostObjectsOf(id: string) {
  const taps = (await network.listOwnedLinks(P)).map((l) => l.name);
  const domains = (await hypervisor.listDomains(`${P}-`)).map((d) => d.name);
  const dirs = await readdir(deps.settings.instancesDir).catch(() => [] as string[]);
  return {
    tap: taps.includes(tapName(P, id)),
    domain: domains.includes(domainName(P, id)),
    dir: dirs.includes(id),
  };
}

/**
 * Run `what` the first time `method` of `target` is called once `armed()` is true, before the
 * call itself. Returns the undo.
 */
function during<O extends object>(
  target: O,
  method: keyof O,
  what: () => Promise<void>,
  armed: () => boolean = () => true,
) {
  const original = target[method] as (...args: unknown[]) => Promise<unknown>;
  let done = false;
  target[method] = (async (...args: unknown[]) => {
    if (!done && armed()) {
      done = true;
      await what();
    }
    return original.apply(target, args);
  }) as O[keyof O];
  return () => {
    target[method] = original as O[keyof O];
  };
}

/**
 * The network converge at the start of a reconcile lists links too, before anything else: the
 * reconciler's own listing of taps is the first one after it listed the domains.
 */
function afterDomainsListed() {
  let listed = false;
  const restore = during(hypervisor, 'listDomains', async () => void (listed = true));
  return { armed: () => listed, restore };
}

describe(`reconciler against concurrent launches (prefix ${P})`, () => {
  const listings = {
    domains: () => during(hypervisor, 'listDomains', launchNow),
    taps: () => {
      const domains = afterDomainsListed();
      const restore = during(network, 'listOwnedLinks', launchNow, domains.armed);
      return () => (restore(), domains.restore());
    },
    'image files': () => during(deps.images, 'listImageFiles', launchNow),
  };
  let id = '';
  const launchNow = async () => {
    id = await launch('running');
  };

  it.each(Object.keys(listings) as (keyof typeof listings)[])(
    'keeps what a launch made that finished after the database read (launched before the %s listing)',
    async (listing) => {
      id = '';
      const restore = listings[listing]();
      try {
        const report = await reconcile(deps);
        expect(id).not.toBe('');
        expect(report.removedTaps).toEqual([]);
        expect(report.removedDomains).toEqual([]);
        expect(report.removedDirs).toEqual([]);
      } finally {
        restore();
      }
      expect(await hostObjectsOf(id)).toEqual({ tap: true, domain: true, dir: true });
    },
    T,
  );

  it(
    'keeps the tap of a launch in flight (its lock held) that began after the database read',
    async () => {
      let finish = () => {};
      let inFlight: Promise<void> = Promise.resolve();
      const domains = afterDomainsListed();
      const hook = during(
        network,
        'listOwnedLinks',
        async () => {
          id = newId('instance');
          const made = new Promise<void>((resolve) => {
            inFlight = deps.locks.run(id, async () => {
              await db.instance.create({
                data: {
                  id,
                  reservationId,
                  imageId,
                  instanceType: 't3.micro',
                  vcpus: 1,
                  memoryMiB: 512,
                  state: 'pending',
                  macAddress: macForInstance(id),
                  vpcId: newId('vpc'),
                },
              });
              await run('ip', ['tuntap', 'add', 'dev', tapName(P, id), 'mode', 'tap'], {
                timeoutMs: 10_000,
              });
              resolve();
              await new Promise<void>((r) => (finish = r)); // the rest of the launch
              await db.instance.update({ where: { id }, data: { state: 'running' } });
            });
          });
          await made;
        },
        domains.armed,
      );
      const restore = () => (hook(), domains.restore());
      try {
        const report = await reconcile(deps);
        expect(report.removedTaps).toEqual([]);
        expect((await hostObjectsOf(id)).tap).toBe(true);
      } finally {
        restore();
        finish();
        await inFlight;
      }
    },
    T,
  );

  it(
    'still removes what no instance owns',
    async () => {
      const id = await launch('running');
      await db.instance.update({ where: { id }, data: { state: 'terminated' } });
      const report = await reconcile(deps);
      expect(report.removedTaps).toEqual([tapName(P, id)]);
      expect(report.removedDomains).toEqual([domainName(P, id)]);
      expect(report.removedDirs).toEqual([id]);
      expect(await hostObjectsOf(id)).toEqual({ tap: false, domain: false, dir: false });
    },
    T,
  );
});

describe('a launch whose image was deregistered', () => {
  it(
    'fails for good at once: the instance ends terminated with the reason, nothing is re-queued',
    async () => {
      const gone = newId('image');
      await db.image.create({
        data: { id: gone, name: 'gone', state: 'deregistered', source: '/dev/null' },
      });
      const id = newId('instance');
      await db.instance.create({
        data: {
          id,
          reservationId,
          imageId: gone,
          instanceType: 't3.micro',
          vcpus: 1,
          memoryMiB: 512,
          state: 'pending',
          macAddress: macForInstance(id),
          vpcId: newId('vpc'),
        },
      });
      // The first of three attempts: only a terminal failure ends the launch here.
      const job = { attemptsMade: 0, opts: { attempts: 3 } } as unknown as Job;
      const error = await launchInstance(deps, id, job).then(
        () => null,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(UnrecoverableError);
      const row = await db.instance.findUnique({ where: { id } });
      expect(row?.state).toBe('terminated');
      expect(row?.stateReason).toBe(
        `Client.InvalidAMIID.NotFound: the image ${gone} is deregistered`,
      );
      expect(await hostObjectsOf(id)).toEqual({ tap: false, domain: false, dir: false });
      expect((await reconcile(deps)).requeued).toEqual([]);
    },
    T,
  );
});
