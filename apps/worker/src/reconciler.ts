import { jobIds } from '@minicloud/queue';
import { readdir, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { instanceIdFromDomainName, tapName } from '@minicloud/domain';
import { removePath } from '@minicloud/host';
import type { WorkerDeps } from './context.js';
import { instanceLayout } from './instance-host.js';
import { convergeNetwork } from './network/converge.js';

export interface ReconcileReport {
  removedDomains: string[];
  removedTaps: string[];
  removedDirs: string[];
  removedImageFiles: string[];
  removedVolumes: string[];
  removedSnapshots: string[];
  markedStopped: string[];
  requeued: string[];
  purged: number;
}

/**
 * Compare the host with the database and converge: fix state drift (a guest that powered itself
 * off is `stopped`), re-enqueue work for instances stuck in a transitional state, and remove
 * what minicloud owns on the host but nothing references. Anything locked by a job in flight is
 * left alone.
 *
 * `signal`: the pass was given up (its deadline passed, see reconcile-loop.ts): it stops before
 * its next host change or query instead of running alongside the next pass.
 */
export async function reconcile(
  deps: WorkerDeps,
  options: { signal?: AbortSignal } = {},
): Promise<ReconcileReport> {
  const { db, settings, locks } = deps;
  const step = () => options.signal?.throwIfAborted();
  const report: ReconcileReport = {
    removedDomains: [],
    removedTaps: [],
    removedDirs: [],
    removedImageFiles: [],
    removedVolumes: [],
    removedSnapshots: [],
    markedStopped: [],
    requeued: [],
    purged: 0,
  };
  step();
  // VPC networks, the nft table and Elastic IPs (it logs what it changed). A failure there is
  // reported, and the rest of the reconcile still runs.
  try {
    await convergeNetwork(deps);
  } catch (e) {
    deps.log(`reconciler: ${(e as Error).message}`);
  }

  step();
  // Read before the host: a state seen here is never newer than the domain state listed below,
  // so drift (a guest that powered itself off) is judged on a consistent pair.
  const live = await db.instance.findMany({ where: { state: { not: 'terminated' } } });
  const liveById = new Map(live.map((i) => [i.id, i]));

  // What minicloud owns on the host is listed FIRST, and only then is the database asked who
  // owns it: an instance's (and an image's) row is committed before any job makes its host
  // objects, so everything listed that a launch made, also one that began after `live` was
  // read, has its row by then and is never taken for an orphan.
  step();
  const domains = await deps.hypervisor.listDomains(`${settings.prefix}-`);
  step();
  const links = await deps.network.listOwnedLinks(settings.prefix);
  const instanceDirs = await readdir(settings.instancesDir).catch(() => [] as string[]);
  const imageFiles = await deps.images.listImageFiles();
  step();
  const owners = new Set(
    (
      await db.instance.findMany({
        where: { state: { not: 'terminated' } },
        select: { id: true },
      })
    ).map((i) => i.id),
  );

  // Domains: remove those of unknown or terminated instances; observe guests that powered off.
  const seenDomains = new Set<string>();
  for (const d of domains) {
    step();
    const id = d.instanceId ?? instanceIdFromDomainName(settings.prefix, d.name);
    if (!id) continue;
    seenDomains.add(id);
    if (locks.isHeld(id)) continue;
    const instance = liveById.get(id);
    if (!owners.has(id)) {
      await deps.hypervisor.undefine(d.name);
      report.removedDomains.push(d.name);
    } else if (instance?.state === 'running' && d.state !== 'running' && d.state !== 'paused') {
      if (
        await markStopped(
          deps,
          id,
          instance.actionSeq,
          'Client.InstanceInitiatedShutdown: Instance initiated shutdown',
        )
      ) {
        report.markedStopped.push(id);
      }
    }
  }
  for (const instance of live) {
    step();
    if (
      instance.state === 'running' &&
      !seenDomains.has(instance.id) &&
      !locks.isHeld(instance.id)
    ) {
      if (
        await markStopped(
          deps,
          instance.id,
          instance.actionSeq,
          'Server.InternalError: the domain disappeared',
        )
      ) {
        report.markedStopped.push(instance.id);
      }
    }
  }

  // Taps and instance directories that no instance references.
  const wantedTaps = new Set([...owners].map((id) => tapName(settings.prefix, id)));
  for (const link of links) {
    step();
    if (link.kind !== 'tun' || wantedTaps.has(link.name)) continue;
    await deps.network.removePort(link.name);
    report.removedTaps.push(link.name);
  }
  for (const entry of instanceDirs) {
    step();
    if (owners.has(entry) || locks.isHeld(entry)) continue;
    await removePath(instanceLayout(deps, entry).dir);
    report.removedDirs.push(entry);
  }

  // Image files of deregistered or unknown images (imports in flight hold their lock).
  step();
  const images = await db.image.findMany({
    where: { state: { not: 'deregistered' } },
    select: { id: true },
  });
  const wantedImages = new Set(images.map((i) => i.id));
  for (const file of imageFiles) {
    step();
    if (wantedImages.has(file.imageId) || locks.isHeld(file.imageId)) continue;
    await removePath(file.path);
    report.removedImageFiles.push(file.path);
  }

  // Work that was accepted but whose job was lost (Redis down at enqueue, crash before enqueue).
  const transitional = new Set(['pending', 'stopping', 'shutting-down']);
  for (const i of live) {
    step();
    if (!transitional.has(i.state) || locks.isHeld(i.id)) continue;
    // `live` was read a while ago: a job that finished since then needs nothing.
    const now = await db.instance.findUnique({
      where: { id: i.id },
      select: { state: true, actionSeq: true },
    });
    if (now?.state !== i.state || now.actionSeq !== i.actionSeq || locks.isHeld(i.id)) continue;
    const requeued =
      i.state === 'pending'
        ? i.actionSeq === 0
          ? await deps.queue.ensureJob('instance.launch', { instanceId: i.id }, jobIds.launch(i.id))
          : await deps.queue.ensureJob(
              'instance.start',
              { instanceId: i.id },
              jobIds.instanceAction(i.id, 'start', i.actionSeq),
            )
        : i.state === 'stopping'
          ? await deps.queue.ensureJob(
              'instance.stop',
              { instanceId: i.id, force: false },
              jobIds.instanceAction(i.id, 'stop', i.actionSeq),
            )
          : i.state === 'shutting-down'
            ? await deps.queue.ensureJob(
                'instance.terminate',
                { instanceId: i.id },
                jobIds.instanceAction(i.id, 'terminate', i.actionSeq),
              )
            : false;
    if (requeued) report.requeued.push(i.id);
  }
  step();
  const pendingImages = await db.image.findMany({
    where: { state: { in: ['pending', 'deregistering'] } },
  });
  for (const image of pendingImages) {
    if (locks.isHeld(image.id)) continue;
    if (image.state === 'pending')
      await deps.queue.ensureJob(
        'image.import',
        { imageId: image.id },
        jobIds.imageImport(image.id),
      );
    else
      await deps.queue.ensureJob(
        'image.delete',
        { imageId: image.id },
        jobIds.imageDelete(image.id),
      );
  }

  // Volume work that was accepted but whose job was lost (or whose worker died mid-way).
  step();
  const busyVolumes = await db.volume.findMany({
    where: {
      OR: [
        { state: { in: ['creating', 'deleting'] }, instanceId: null },
        { attachState: { in: ['attaching', 'detaching'] } },
      ],
    },
  });
  for (const v of busyVolumes) {
    step();
    if (locks.isHeld(v.id) || (v.instanceId && locks.isHeld(v.instanceId))) continue;
    // Launch and terminate jobs own the volumes of instances in those states.
    const owner = v.instanceId ? liveById.get(v.instanceId) : undefined;
    if (v.instanceId && (!owner || owner.state === 'pending' || owner.state === 'shutting-down'))
      continue;
    const seq = v.actionSeq;
    if (v.attachState === 'attaching')
      await deps.queue.ensureJob(
        'volume.attach',
        { volumeId: v.id },
        jobIds.volumeAction(v.id, 'attach', seq),
      );
    else if (v.attachState === 'detaching') {
      await deps.queue.ensureJob(
        'volume.detach',
        { volumeId: v.id, force: false },
        jobIds.volumeAction(v.id, 'detach', seq),
      );
    } else if (v.state === 'creating')
      await deps.queue.ensureJob('volume.create', { volumeId: v.id }, jobIds.volumeCreate(v.id));
    else if (v.state === 'deleting')
      await deps.queue.ensureJob(
        'volume.delete',
        { volumeId: v.id },
        jobIds.volumeAction(v.id, 'delete', seq),
      );
  }
  for (const snap of await db.snapshot.findMany({ where: { state: 'pending', deletedAt: null } })) {
    if (!locks.isHeld(snap.volumeId))
      await deps.queue.ensureJob(
        'snapshot.create',
        { snapshotId: snap.id },
        jobIds.snapshotCreate(snap.id),
      );
  }

  // Volume and snapshot files that no row references (deleted, or from a crash before the row):
  // listed before the rows are read, for the same reason as above.
  step();
  const drivers = [...new Set([deps.volumes, deps.rootVolumes])];
  const files = await Promise.all(
    drivers.map(async (driver) => ({
      driver,
      volumes: await driver.listVolumes(),
      snapshots: await driver.listSnapshots(),
    })),
  );
  const knownVolumes = new Set(
    (await db.volume.findMany({ where: { state: { not: 'deleted' } }, select: { id: true } })).map(
      (v) => v.id,
    ),
  );
  const knownSnapshots = new Set(
    (await db.snapshot.findMany({ where: { deletedAt: null }, select: { id: true } })).map(
      (x) => x.id,
    ),
  );
  for (const { driver, volumes, snapshots } of files) {
    for (const id of volumes) {
      step();
      if (knownVolumes.has(id) || locks.isHeld(id)) continue;
      await driver.delete(id);
      report.removedVolumes.push(id);
    }
    for (const id of snapshots) {
      step();
      if (knownSnapshots.has(id)) continue;
      await driver.deleteSnapshot(id);
      report.removedSnapshots.push(id);
    }
  }

  // virsh's temp files of a worker killed mid-call (each call takes seconds; these are old).
  for (const name of await readdir(tmpdir()).catch(() => [] as string[])) {
    if (!name.startsWith('minicloud-virsh-')) continue;
    const path = join(tmpdir(), name);
    const age = Date.now() - (await stat(path).catch(() => ({ mtimeMs: Date.now() }))).mtimeMs;
    if (age > 10 * 60_000) await removePath(path);
  }

  // Terminated instances stay visible for a while, then go.
  step();
  const cutoff = new Date(Date.now() - settings.terminatedRetentionMs);
  const expired = await db.instance.findMany({
    where: { state: 'terminated', terminatedAt: { lt: cutoff } },
    select: { id: true },
  });
  if (expired.length) {
    const ids = expired.map((e) => e.id);
    await db.$transaction([
      db.tag.deleteMany({ where: { resourceId: { in: ids } } }),
      db.addressLease.deleteMany({ where: { instanceId: { in: ids } } }),
      db.instance.deleteMany({ where: { id: { in: ids } } }),
    ]);
    report.purged = ids.length;
  }
  return report;
}

async function markStopped(
  deps: WorkerDeps,
  id: string,
  seq: number,
  reason: string,
): Promise<boolean> {
  const { count } = await deps.db.instance.updateMany({
    where: { id, state: 'running', actionSeq: seq },
    data: { state: 'stopped', stateReason: reason },
  });
  return count === 1;
}
