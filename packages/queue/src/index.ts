import { Queue, QueueEvents, Worker, UnrecoverableError, type Job } from 'bullmq';
import { Redis, type RedisOptions } from 'ioredis';
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
 * Queries: a question the API asks a worker and waits for (JobQueue.request), such as what only
 * the host that runs a guest can read. Not retried, removed when answered.
 */
export const queryPayloads = {
  /** The tail of an instance's serial console log. */
  'instance.console': z.object({ instanceId: z.string() }),
} as const;
export const queryResults = {
  /** `output`: the last 64 KiB of the console log, base64 ('' when there is none yet). */
  'instance.console': z.object({ output: z.string() }),
} as const;

export type QueryName = keyof typeof queryPayloads;
export type QueryPayload<N extends QueryName> = z.infer<(typeof queryPayloads)[N]>;
export type QueryResult<N extends QueryName> = z.infer<(typeof queryResults)[N]>;

/** No worker answered a query in time (none running, or all of them busy). */
export class QueryTimeoutError extends Error {
  constructor(
    readonly query: QueryName,
    readonly timeoutMs: number,
  ) {
    super(`no worker answered ${query} within ${timeoutMs} ms`);
    this.name = 'QueryTimeoutError';
  }
}

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
/** Queries have their own queue: a question is never stuck behind slow work. */
const QUERY_QUEUE = 'queries';

/**
 * Redis did not answer in time (down, restarting, loading or hung): the API answers 503
 * ServiceUnavailable, and committed work waits in the outbox until Redis is back.
 */
export class QueueUnavailableError extends Error {
  constructor(reason: string) {
    super(`the job queue (Redis) is unavailable: ${reason}`);
    this.name = 'QueueUnavailableError';
  }
}

/** Errors that say Redis cannot be reached or cannot serve now, not that a request was wrong. */
const UNAVAILABLE =
  /Stream isn't writeable|Connection is closed|Command timed out|max retries per request|ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|EHOSTUNREACH|NOAUTH|WRONGPASS|LOADING|MISCONF|READONLY|MASTERDOWN/i;

export interface QueueOptions {
  connection: RedisOptions;
  /** Redis key prefix: two minicloud installations on one Redis never share jobs. */
  prefix: string;
  /**
   * Longest wait for Redis on the producer side (enqueue, checks), in ms: past it the call fails
   * with QueueUnavailableError instead of waiting for Redis to come back. Default 2000.
   */
  timeoutMs?: number;
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
  private readonly queries: Queue;
  /** The answers to queries, listened to from the first request on. */
  private queryEvents: Promise<QueueEvents> | null = null;
  /** Queries asked and not yet answered, by job id. */
  private readonly waiting = new Map<
    string,
    { resolve: (answer: unknown) => void; reject: (error: Error) => void }
  >();

  /**
   * The producers' one connection, failing fast: no offline queue (a command while disconnected
   * fails at once), one retry, a command timeout. Only a Worker's blocking connection needs
   * maxRetriesPerRequest null; this one must never wait for Redis indefinitely.
   */
  private readonly redis: Redis;
  private readonly timeoutMs: number;
  /** Resolves when the first connection is up: before it, a check waits instead of failing. */
  private readonly firstReady: Promise<void>;
  private connectedOnce = false;
  /** The connection's last error, to say why Redis is unavailable. */
  private lastError = '';
  /** When Redis last answered a call (ms since the epoch). */
  private lastAnswerAt = 0;

  constructor(private readonly options: QueueOptions) {
    this.timeoutMs = options.timeoutMs ?? 2000;
    this.redis = new Redis({
      ...options.connection,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      // Only a backstop: each call has its own deadline (bounded), which lets an answer delayed
      // by a busy event loop in first; a timer here would fire with it and fail a live Redis.
      commandTimeout: Math.max(this.timeoutMs * 5, 10_000),
      connectTimeout: this.timeoutMs,
      // Reconnect quickly once Redis is back (ioredis' default backs off up to 2 s as well).
      retryStrategy: (times) => Math.min(times * 100, 1000),
    });
    // The state is read from `status`; each failed call reports its own error.
    this.redis.on('error', (e: Error) => (this.lastError = e.message));
    this.firstReady = new Promise((resolve) =>
      this.redis.once('ready', () => {
        this.connectedOnce = true;
        resolve();
      }),
    );
    const queue = (name: string) =>
      new Queue(name, { connection: this.redis, prefix: options.prefix });
    this.queues = Object.fromEntries(QUEUE_NAMES.map((name) => [name, queue(name)])) as Record<
      QueueName,
      Queue
    >;
    this.queries = queue(QUERY_QUEUE);
    for (const q of this.allQueues()) q.on('error', () => undefined);
  }

  /**
   * Throw QueueUnavailableError unless Redis answers a PING now (within the timeout): checked
   * before a change is committed, so a request that needs the queue fails before it writes.
   */
  async assertAvailable(
    timeoutMs = this.timeoutMs,
    options: { fresh?: boolean } = {},
  ): Promise<void> {
    // A command answered a moment ago: no PING per request in a burst (`fresh`: always PING).
    const recent = Date.now() - this.lastAnswerAt < 1000;
    if (this.redis.status === 'ready' && recent && !options.fresh) return;
    const why = () => `not connected${this.lastError ? ` (${this.lastError})` : ''}`;
    if (this.redis.status !== 'ready') {
      if (this.connectedOnce) throw new QueueUnavailableError(why());
      await this.bounded(() => this.firstReady, timeoutMs).catch(() => {
        throw new QueueUnavailableError(why());
      });
    }
    await this.bounded(() => this.redis.ping(), timeoutMs);
  }

  /** Run a Redis operation with a deadline; connection failures become QueueUnavailableError. */
  private async bounded<T>(work: () => Promise<T>, timeoutMs = this.timeoutMs): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_resolve, reject) => {
      // setImmediate: an answer that came while the event loop was busy (the timer and the reply
      // both due) is read first, so a loaded process does not report a live Redis as down.
      timer = setTimeout(
        () =>
          setImmediate(() => reject(new QueueUnavailableError(`no answer within ${timeoutMs} ms`))),
        timeoutMs,
      );
    });
    try {
      const result = await Promise.race([work(), deadline]);
      this.lastAnswerAt = Date.now();
      return result;
    } catch (e) {
      if (e instanceof QueueUnavailableError) throw e;
      const message = (e as Error)?.message ?? String(e);
      if (UNAVAILABLE.test(message) || UNAVAILABLE.test((e as { code?: string })?.code ?? ''))
        throw new QueueUnavailableError(message);
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Enqueue a job; a second enqueue with the same jobId while the first exists is a no-op. */
  async enqueue<N extends JobName>(name: N, payload: JobPayload<N>, jobId: string): Promise<void> {
    const data = jobPayloads[name].parse(payload);
    await this.bounded(() =>
      this.queues[QUEUE_OF[name]].add(name, data, { ...DEFAULT_JOB_OPTIONS, jobId }),
    );
  }

  /** Enqueue many jobs of one kind in one round trip (ids dedupe as with enqueue). */
  async enqueueMany<N extends JobName>(
    name: N,
    jobs: { payload: JobPayload<N>; jobId: string }[],
  ): Promise<void> {
    if (jobs.length === 0) return;
    const bulk = jobs.map((j) => ({
      name,
      data: jobPayloads[name].parse(j.payload),
      opts: { ...DEFAULT_JOB_OPTIONS, jobId: j.jobId },
    }));
    await this.bounded(() => this.queues[QUEUE_OF[name]].addBulk(bulk));
  }

  /**
   * The state of a job by id ('missing' when Redis has no such job): the outbox relay re-enqueues
   * what Redis lost.
   */
  async jobState(name: JobName, jobId: string): Promise<string> {
    const queue = this.queues[QUEUE_OF[name]];
    return this.bounded(() => queue.getJobState(jobId));
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
    const queue = this.queues[QUEUE_OF[name]];
    const replaced = await this.bounded(async () => {
      const existing = await queue.getJob(jobId);
      if (!existing) return true;
      const state = await existing.getState();
      if (state !== 'completed' && state !== 'failed') return false;
      await existing.remove();
      return true;
    });
    if (!replaced) return false;
    await this.enqueue(name, payload, jobId);
    return true;
  }

  /**
   * Ask a worker a question and wait for its answer: a job on the 'queries' queue, tried once and
   * removed when done. Throws QueryTimeoutError when no answer comes within timeoutMs, and an
   * Error with the worker's message when the handler failed.
   */
  async request<N extends QueryName>(
    name: N,
    payload: QueryPayload<N>,
    options: { timeoutMs: number },
  ): Promise<QueryResult<N>> {
    const data = queryPayloads[name].parse(payload);
    await this.assertAvailable();
    await this.bounded(() => this.answers());
    const jobId = `${name}.${randomUUID()}`;
    const answered = new Promise<unknown>((resolve, reject) =>
      this.waiting.set(jobId, { resolve, reject }),
    );
    // Awaited only once the job is added: a timeout before that is not an unhandled rejection.
    answered.catch(() => undefined);
    const timer = setTimeout(
      () => this.waiting.get(jobId)?.reject(new QueryTimeoutError(name, options.timeoutMs)),
      options.timeoutMs,
    );
    try {
      const job = await this.bounded(() =>
        this.queries.add(name, data, {
          jobId,
          attempts: 1,
          removeOnComplete: true,
          removeOnFail: true,
        }),
      );
      try {
        return queryResults[name].parse(await answered) as QueryResult<N>;
      } catch (e) {
        // Nobody waits for this answer any more: no worker need compute it.
        if (e instanceof QueryTimeoutError) await job.remove().catch(() => undefined);
        throw e;
      }
    } finally {
      clearTimeout(timer);
      this.waiting.delete(jobId);
    }
  }

  /**
   * Listen to the answers of queries (once, from the first request on). The event stream is read
   * from the current Redis time: an answer that comes before the first blocking read is still
   * seen (QueueEvents alone would start at '$', after it).
   */
  private answers(): Promise<QueueEvents> {
    this.queryEvents ??= (async () => {
      const [seconds, micros] = await this.redis.time();
      const events = new QueueEvents(QUERY_QUEUE, {
        connection: this.options.connection,
        prefix: this.options.prefix,
        lastEventId: `${Number(seconds) * 1000 + Math.floor(Number(micros) / 1000)}-0`,
      });
      events.on('completed', ({ jobId, returnvalue }) =>
        this.waiting.get(jobId)?.resolve(returnvalue),
      );
      events.on('failed', ({ jobId, failedReason }) =>
        this.waiting.get(jobId)?.reject(new Error(`query ${jobId} failed: ${failedReason}`)),
      );
      // Connection trouble is retried by ioredis; a query meanwhile ends in its timeout.
      events.on('error', () => undefined);
      return events;
    })();
    this.queryEvents.catch(() => (this.queryEvents = null));
    return this.queryEvents;
  }

  async close(): Promise<void> {
    const events = await this.queryEvents?.catch(() => null);
    await Promise.all([...this.allQueues().map((q) => q.close()), events?.close()]);
    // Shared with the queues, so closed here (BullMQ leaves a shared connection open).
    this.redis.disconnect();
  }

  /** How many jobs this installation holds, in any state (tests: "nothing was enqueued"). */
  async countJobs(): Promise<number> {
    const counts = await Promise.all(this.allQueues().map((q) => q.getJobCountByTypes()));
    return counts.reduce((a, b) => a + b, 0);
  }

  /** Remove every job of this installation (tests and uninstall). */
  async obliterate(): Promise<void> {
    await this.bounded(
      () => Promise.all(this.allQueues().map((q) => q.obliterate({ force: true }))),
      30_000,
    );
  }

  private allQueues(): Queue[] {
    return [...Object.values(this.queues), this.queries];
  }
}

/** What a worker does: every job, and the answer to every query. */
export type JobHandlers = {
  [N in JobName]: (payload: JobPayload<N>, job: Job) => Promise<void>;
} & {
  [N in QueryName]: (payload: QueryPayload<N>, job: Job) => Promise<QueryResult<N>>;
};

export interface WorkerOptions extends QueueOptions {
  concurrency: number;
  onFailed?: (job: Job | undefined, error: Error) => void;
}

const PAYLOADS: Record<string, z.ZodType> = { ...jobPayloads, ...queryPayloads };

/**
 * Consumer side: one BullMQ worker per queue (and one for queries), dispatching by job name to
 * typed handlers. A query handler's result is the job's return value: the asker's answer.
 */
export function startWorkers(handlers: JobHandlers, options: WorkerOptions): Worker[] {
  return [...QUEUE_NAMES, QUERY_QUEUE].map((queueName) => {
    const worker = new Worker(
      queueName,
      async (job: Job) => {
        const name = job.name as JobName | QueryName;
        const schema = Object.hasOwn(PAYLOADS, name) ? PAYLOADS[name] : undefined;
        if (!schema) throw new UnrecoverableError(`unknown job ${job.name}`);
        const parsed = schema.safeParse(job.data);
        if (!parsed.success) throw new UnrecoverableError(`bad payload for ${name}`);
        const handler = handlers[name] as (p: unknown, j: Job) => Promise<unknown>;
        return handler(parsed.data, job);
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

/**
 * Connection options from a redis:// URL (password and database number included). Producers
 * (JobQueue) make them fail fast; BullMQ sets maxRetriesPerRequest null on a Worker's blocking
 * connection itself.
 */
export function connectionFromUrl(url: string): RedisOptions {
  const u = new URL(url);
  return {
    host: u.hostname,
    port: Number(u.port || 6379),
    username: u.username ? decodeURIComponent(u.username) : undefined,
    password: u.password ? decodeURIComponent(u.password) : undefined,
    db: u.pathname.length > 1 ? Number(u.pathname.slice(1)) : 0,
    // Reconnect within a second or two once Redis is back (BullMQ's default waits up to 20 s).
    retryStrategy: (times: number) => Math.min(times * 200, 2000),
  };
}
