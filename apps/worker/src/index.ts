import { startWorkers, type JobHandlers, type WorkerOptions } from '@minicloud/queue';
import type { WorkerDeps } from './context.js';
import { importImage, deleteImage } from './jobs/image-import.job.js';
import { readConsoleOutput } from './jobs/instance-console.job.js';
import { launchInstance } from './jobs/instance-launch.job.js';
import { rebootInstance } from './jobs/instance-reboot.job.js';
import { startInstance } from './jobs/instance-start.job.js';
import { stopInstance } from './jobs/instance-stop.job.js';
import { terminateInstance } from './jobs/instance-terminate.job.js';
import { applyNetwork } from './jobs/network-apply.job.js';
import { finishingOutboxRows, requeuePendingJobs } from './outbox.js';
import { reconcile } from './reconciler.js';
import { startReconcileLoop } from './reconcile-loop.js';
import {
  attachVolume,
  createSnapshot,
  createVolume,
  deleteSnapshot,
  deleteVolume,
  detachVolume,
  resizeVolume,
} from './jobs/volume.jobs.js';

export type { WorkerDeps, WorkerSettings } from './context.js';
export { reconcile } from './reconciler.js';
export { requeuePendingJobs } from './outbox.js';
export { startReconcileLoop, ReconcileDeadlineError } from './reconcile-loop.js';
export type { ReconcileLoop, ReconcileLoopOptions, ReconcilePass } from './reconcile-loop.js';
export { tearDown, instanceLayout } from './instance-host.js';
export { convergeNetwork } from './network/converge.js';
export type { ConvergeReport } from './network/converge-report.js';
export { removeAllNetworks } from './network/teardown.js';

export function jobHandlers(deps: WorkerDeps): JobHandlers {
  return {
    'instance.launch': (p, job) => launchInstance(deps, p.instanceId, job),
    'instance.start': (p) => startInstance(deps, p.instanceId),
    'instance.stop': (p) => stopInstance(deps, p.instanceId, p.force),
    'instance.reboot': (p) => rebootInstance(deps, p.instanceId),
    'instance.terminate': (p) => terminateInstance(deps, p.instanceId),
    'image.import': (p, job) => importImage(deps, p.imageId, job),
    'image.delete': (p) => deleteImage(deps, p.imageId),
    'volume.create': (p, job) => createVolume(deps, p.volumeId, job),
    'volume.delete': (p) => deleteVolume(deps, p.volumeId),
    'volume.attach': (p, job) => attachVolume(deps, p.volumeId, job),
    'volume.detach': (p) => detachVolume(deps, p.volumeId, p.force),
    'volume.resize': (p) => resizeVolume(deps, p.volumeId, p.sizeGiB),
    'snapshot.create': (p, job) => createSnapshot(deps, p.snapshotId, job),
    'snapshot.delete': (p) => deleteSnapshot(deps, p.snapshotId),
    'network.apply': (p) => applyNetwork(deps, p),
    'instance.console': (p) => readConsoleOutput(deps, p.instanceId),
  };
}

/**
 * Start the job workers, the periodic reconciler (which also runs once right away) and the
 * outbox relay (every `requeueIntervalMs`, default 5 s: committed work Redis lost is queued again).
 */
export async function startWorker(
  deps: WorkerDeps,
  options: Omit<WorkerOptions, 'onFailed'> & {
    reconcileIntervalMs: number;
    /** A reconcile pass running longer is abandoned and the next one runs (default 5 min). */
    reconcileTimeoutMs?: number;
    requeueIntervalMs?: number;
  },
) {
  const {
    reconcileIntervalMs,
    reconcileTimeoutMs = 300_000,
    requeueIntervalMs = 5000,
    ...workerOptions
  } = options;
  const reconciler = startReconcileLoop(
    async (signal) => {
      const r = await reconcile(deps, { signal });
      const changes = Object.entries(r).filter(([, v]) => (Array.isArray(v) ? v.length : v));
      if (changes.length) deps.log(`reconciler: ${JSON.stringify(Object.fromEntries(changes))}`);
    },
    { intervalMs: reconcileIntervalMs, timeoutMs: reconcileTimeoutMs, log: deps.log },
  );
  await reconciler.runNow();
  const workers = startWorkers(finishingOutboxRows(deps, jobHandlers(deps)), {
    ...workerOptions,
    onFailed: (job, error) => deps.log(`job ${job?.name} ${job?.id} failed: ${error.message}`),
  });
  // A worker's blocking connection reports each failed reconnect: say it once per outage.
  let redisDown = false;
  for (const w of workers) {
    w.on('error', (e) => {
      if (!redisDown) deps.log(`worker: Redis unavailable (${e.message}); retrying`);
      redisDown = true;
    });
  }
  let relayFailing = false;
  const runRelay = async () => {
    try {
      const requeued = await requeuePendingJobs(deps, {
        minAgeMs: Math.min(requeueIntervalMs, 5000),
      });
      if (requeued.length) deps.log(`outbox: re-enqueued ${requeued.join(', ')}`);
      if (relayFailing || redisDown) deps.log('outbox: Redis is back, queued work resumes');
      relayFailing = redisDown = false;
    } catch (e) {
      if (!relayFailing) deps.log(`outbox relay failed: ${(e as Error).message}; retrying`);
      relayFailing = true;
    }
  };
  let relaying: Promise<void> | null = null;
  const relayTimer = setInterval(() => {
    relaying ??= runRelay().finally(() => (relaying = null));
  }, requeueIntervalMs);
  return {
    async close() {
      clearInterval(relayTimer);
      await reconciler.close();
      await Promise.all(workers.map((w) => w.close()));
      await relaying;
    },
  };
}
