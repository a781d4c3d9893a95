import { Queue, Worker, UnrecoverableError, type Job, type ConnectionOptions } from 'bullmq';
import { randomUUID } from 'node:crypto';
import { z } from 'zod';

export { UnrecoverableError };
export type { Job };

/** Job names and their payloads: the typed job -> queue map. */
export const jobPayloads = {
  'instance.launch': z.object({ instanceId: z.string() }),
  'instance.start': z.object({ instanceId: z.string() }),
  'instance.stop': z.object({ instanceId: z.string(), force: z.boolean().default(false) }),
  'instance.reboot': z.object({ instanceId: z.string() }),
  'instance.terminate': z.object({ instanceId: z.string() }),
  'image.import': z.object({ imageId: z.string() }),
  'image.delete': z.object({ imageId: z.string() }),
  'volume.create': z.object({ volumeId: z.string() }),
  'volume.delete': z.object({ volumeId: z.string() }),
  'volume.attach': z.object({ volumeId: z.string() }),
  'volume.detach': z.object({ volumeId: z.string(), force: z.boolean().default(false) }),
  'volume.resize': z.object({ volumeId: z.string(), sizeGiB: z.number().int() }),
  'snapshot.create': z.object({ snapshotId: z.string() }),
  'snapshot.delete': z.object({ snapshotId: z.string() }),
  // Converge the host's VPC bridges, dnsmasq, nft table and Elastic IPs with the database.
  'network.apply': z.object({
    reason: z.string(),
    /** Elastic IPs whose association changed: applied first, as nft map-element updates. */
    elasticIpIds: z.array(z.string()).optional(),
    /** 'security-groups': only rules or memberships changed. */
    scope: z.enum(['all', 'security-groups']).optional(),
  }),
} as const;

export type JobName = keyof typeof jobPayloads;

/**
 * Every job id, built here and only here. A job id names one piece of work: enqueuing the same
 * id twice while the first exists is a no-op, which is what makes "never launch twice" hold, so
 * the API and the reconciler must derive exactly the same id for the same work.
 */
export const jobIds = {
  launch: (instanceId: string) => `${instanceId}.launch`,
  /** One lifecycle action of an instance, numbered by its actionSeq. */
  instanceAction: (
    instanceId: string,
    action: 'start' | 'stop' | 'reboot' | 'terminate',
    actionSeq: number,
  ) => `${instanceId}.${action}.${actionSeq}`,
  imageImport: (imageId: string) => `${imageId}.import`,
  imageDelete: (imageId: string) => `${imageId}.delete`,
  volumeCreate: (volumeId: string) => `${volumeId}.create`,
  /** One action on a volume, numbered by its actionSeq. */
  volumeAction: (
    volumeId: string,
    action: 'delete' | 'attach' | 'detach' | 'resize',
    actionSeq: number,
  ) => `${volumeId}.${action}.${actionSeq}`,
  snapshotCreate: (snapshotId: string) => `${snapshotId}.create`,
  snapshotDelete: (snapshotId: string) => `${snapshotId}.delete`,
  /** Network applies are not deduplicated: each carries its own reason and Elastic IPs. */
  networkApply: () => `network.${randomUUID()}`,
} as const;
export type JobPayload<N extends JobName> = z.infer<(typeof jobPayloads)[N]>;

const QUEUE_OF: Record<JobName, QueueName> = {
  'instance.launch': 'instances',
  'instance.start': 'instances',
  'instance.stop': 'instances',
  'instance.reboot': 'instances',
  'instance.terminate': 'instances',
  'image.import': 'images',
  'image.delete': 'images',
  'volume.create': 'volumes',
  'volume.delete': 'volumes',
  'volume.attach': 'volumes',
  'volume.detach': 'volumes',
  'volume.resize': 'volumes',
  'snapshot.create': 'volumes',
  'snapshot.delete': 'volumes',
  'network.apply': 'networks',
};
const QUEUE_NAMES = ['instances', 'images', 'volumes', 'networks'] as const;
type QueueName = (typeof QUEUE_NAMES)[number];

export interface QueueOptions {
  connection: ConnectionOptions;
  /** Redis key prefix: two minicloud installations on one Redis never share jobs. */
  prefix: string;
}

const DEFAULT_JOB_OPTIONS = {
  attempts: 3,
  backoff: { type: 'exponential' as const, delay: 1000 },
  removeOnComplete: { age: 3600, count: 1000 },
  removeOnFail: { age: 24 * 3600 },
};

/** Producer side: the API enqueues work. Job ids are derived from resource ids by the caller. */
export class JobQueue {
  private readonly queues: Record<QueueName, Queue>;

  constructor(private readonly options: QueueOptions) {
    this.queues = Object.fromEntries(
      QUEUE_NAMES.map((name) => [
        name,
        new Queue(name, { connection: options.connection, prefix: options.prefix }),
      ]),
    ) as Record<QueueName, Queue>;
  }

  /** Enqueue a job; a second enqueue with the same jobId while the first exists is a no-op. */
  async enqueue<N extends JobName>(name: N, payload: JobPayload<N>, jobId: string): Promise<void> {
    const data = jobPayloads[name].parse(payload);
    await this.queues[QUEUE_OF[name]].add(name, data, { ...DEFAULT_JOB_OPTIONS, jobId });
  }

  /** Enqueue many jobs of one kind in one round trip (ids dedupe as with enqueue). */
  async enqueueMany<N extends JobName>(
    name: N,
    jobs: { payload: JobPayload<N>; jobId: string }[],
  ): Promise<void> {
    if (jobs.length === 0) return;
    await this.queues[QUEUE_OF[name]].addBulk(
      jobs.map((j) => ({
        name,
        data: jobPayloads[name].parse(j.payload),
        opts: { ...DEFAULT_JOB_OPTIONS, jobId: j.jobId },
      })),
    );
  }

  /**
   * Make sure a job with this id is waiting or running: used by the reconciler for resources
   * stuck in a transitional state. A finished job with the same id is replaced.
   */
  async ensureJob<N extends JobName>(
    name: N,
    payload: JobPayload<N>,
    jobId: string,
  ): Promise<boolean> {
    const existing = await this.queues[QUEUE_OF[name]].getJob(jobId);
    if (existing) {
      const state = await existing.getState();
      if (state !== 'completed' && state !== 'failed') return false;
      await existing.remove();
    }
    await this.enqueue(name, payload, jobId);
    return true;
  }

  async close(): Promise<void> {
    await Promise.all(Object.values(this.queues).map((q) => q.close()));
  }

  /** Remove every job of this installation (tests and uninstall). */
  async obliterate(): Promise<void> {
    await Promise.all(Object.values(this.queues).map((q) => q.obliterate({ force: true })));
  }
}

export type JobHandlers = { [N in JobName]: (payload: JobPayload<N>, job: Job) => Promise<void> };

export interface WorkerOptions extends QueueOptions {
  concurrency: number;
  onFailed?: (job: Job | undefined, error: Error) => void;
}

/** Consumer side: one BullMQ worker per queue, dispatching by job name to typed handlers. */
export function startWorkers(handlers: JobHandlers, options: WorkerOptions): Worker[] {
  return QUEUE_NAMES.map((queueName) => {
    const worker = new Worker(
      queueName,
      async (job: Job) => {
        const name = job.name as JobName;
        const schema = jobPayloads[name];
        if (!schema) throw new UnrecoverableError(`unknown job ${job.name}`);
        const parsed = schema.safeParse(job.data);
        if (!parsed.success) throw new UnrecoverableError(`bad payload for ${name}`);
        const handler = handlers[name] as (p: unknown, j: Job) => Promise<void>;
        await handler(parsed.data, job);
      },
      {
        connection: options.connection,
        prefix: options.prefix,
        concurrency: options.concurrency,
        // A worker killed mid-job: its lock expires and the job is picked up again soon.
        lockDuration: 15_000,
        stalledInterval: 5_000,
        maxStalledCount: 5,
      },
    );
    if (options.onFailed) worker.on('failed', options.onFailed);
    return worker;
  });
}

export function connectionFromUrl(url: string): ConnectionOptions {
  const u = new URL(url);
  return {
    host: u.hostname,
    port: Number(u.port || 6379),
    password: u.password || undefined,
    db: u.pathname.length > 1 ? Number(u.pathname.slice(1)) : 0,
    maxRetriesPerRequest: null,
  };
}
