import { z } from 'zod';
import { MAX_USER_DATA_BYTES } from '@minicloud/domain';
import { dirname, join } from 'node:path';
import { parseOutboundAllowList, type OutboundAllowList } from '@minicloud/domain';

/**
 * The one settings schema. Apps read the environment once through `loadConfig`, which reports
 * every bad key at once; packages take their settings as constructor options.
 */
const listen = z
  .string()
  .regex(/^[0-9a-zA-Z.:[\]-]+:\d{1,5}$/, 'expected HOST:PORT, e.g. 127.0.0.1:8080');

/** Where scripts/setup.sh keeps the generated Redis password (mode 0600). */
export const DEFAULT_REDIS_PASSWORD_FILE = '/var/lib/minicloud-redis/password';

const schema = z.object({
  MINICLOUD_LISTEN: listen.default('127.0.0.1:8080'),
  MINICLOUD_DATA_DIR: z
    .string()
    .startsWith('/', 'must be an absolute path')
    .default('/var/lib/minicloud'),
  MINICLOUD_PREFIX: z
    .string()
    .regex(/^[a-z][a-z0-9]{1,4}$/, '2-5 characters [a-z0-9], starting with a letter')
    .default('mc'),
  MINICLOUD_ADMIN_KEY: z.string().min(16, 'at least 16 characters').optional(),
  MINICLOUD_REDIS_URL: z.string().url().default('redis://127.0.0.1:6379'),
  MINICLOUD_REDIS_PASSWORD_FILE: z.string().startsWith('/', 'must be an absolute path').optional(),
  MINICLOUD_DATABASE_URL: z
    .string()
    .regex(
      /^(file:|postgres(ql)?:\/\/)/,
      'file:PATH (SQLite) or postgresql://USER:PASSWORD@HOST/DB',
    )
    .optional(),
  MINICLOUD_LIBVIRT_URI: z.string().default('qemu:///system'),
  MINICLOUD_VIRT_TYPE: z.enum(['auto', 'kvm', 'qemu', 'test']).default('auto'),
  MINICLOUD_NETWORK_CIDR: z
    .string()
    .regex(/^\d{1,3}(\.\d{1,3}){3}\/(1[6-9]|2[0-8])$/, 'an IPv4 CIDR from /16 to /28')
    .default('10.11.0.0/24'),
  MINICLOUD_UPLINK: z
    .string()
    .regex(/^(auto|none|[a-zA-Z0-9_.-]{1,15})$/, 'auto, none or an interface name')
    .default('auto'),
  MINICLOUD_ELASTIC_IP_POOL: z
    .string()
    .regex(
      /^\d{1,3}(\.\d{1,3}){3}(\/\d{1,2}|-\d{1,3}(\.\d{1,3}){3})$/,
      'a CIDR (198.51.100.16/28) or a range (198.51.100.16-198.51.100.31)',
    )
    .optional(),
  MINICLOUD_GPU_DEVICES: z.string().default(''),
  MINICLOUD_WORKER_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(16),
  MINICLOUD_STOP_TIMEOUT_SECONDS: z.coerce.number().int().min(0).max(3600).default(30),
  MINICLOUD_RECONCILE_INTERVAL_SECONDS: z.coerce.number().int().min(1).max(86400).default(30),
  MINICLOUD_RECONCILE_TIMEOUT_SECONDS: z.coerce.number().int().min(10).max(86400).default(300),
  MINICLOUD_LIBVIRT_TIMEOUT_SECONDS: z.coerce.number().int().min(1).max(3600).default(30),
  MINICLOUD_LIBVIRT_MAX_CALLS: z.coerce.number().int().min(1).max(64).default(2),
  MINICLOUD_TERMINATED_RETENTION_MINUTES: z.coerce.number().int().min(0).default(60),
  MINICLOUD_DEFAULT_IMAGE: z.string().startsWith('/').optional(),
  MINICLOUD_IMAGE_IMPORT_DIRS: z
    .string()
    .default('/srv/images,/var/lib/minicloud/import,/var/cache/minicloud'),
  MINICLOUD_IMAGE_IMPORT_ALLOW: z
    .string()
    .default('')
    .superRefine((text, ctx) => {
      for (const problem of parseOutboundAllowList(text).problems) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, message: problem });
      }
    }),
  MINICLOUD_IMAGE_MAX_GIB: z.coerce.number().int().min(1).max(65536).default(64),
  MINICLOUD_IMAGE_IMPORT_CONNECT_TIMEOUT_SECONDS: z.coerce
    .number()
    .int()
    .min(1)
    .max(300)
    .default(10),
  MINICLOUD_IMAGE_IMPORT_IDLE_TIMEOUT_SECONDS: z.coerce.number().int().min(1).max(3600).default(30),
  MINICLOUD_IMAGE_IMPORT_TIMEOUT_MINUTES: z.coerce.number().int().min(1).max(10080).default(240),
  MINICLOUD_MAX_VOLUME_GIB: z.coerce.number().int().min(1).default(16384),
  MINICLOUD_VOLUME_GROUP: z
    .string()
    .regex(/^[A-Za-z0-9_.+-]+$/)
    .optional(),
  MINICLOUD_THIN_POOL: z
    .string()
    .regex(/^[A-Za-z0-9_.+-]+$/)
    .default('minicloud-pool'),
  // May lower the one limit (MAX_USER_DATA_BYTES), never raise it: the seed builder holds to it.
  MINICLOUD_MAX_USER_DATA_BYTES: z.coerce
    .number()
    .int()
    .min(0)
    .max(
      MAX_USER_DATA_BYTES,
      `at most ${MAX_USER_DATA_BYTES} (EC2's limit, kept by cloud-init seeds)`,
    )
    .default(MAX_USER_DATA_BYTES),
});

/** Every setting's name (MINICLOUD_*): for checks of example files and documentation. */
export const SETTING_NAMES: readonly string[] = Object.keys(schema.shape);

export interface Config {
  listenHost: string;
  listenPort: number;
  dataDir: string;
  prefix: string;
  adminKey: string | undefined;
  redisUrl: string;
  /**
   * The file holding Redis' password (used when the URL carries none); `required` when set
   * explicitly, optional at the default path written by scripts/setup.sh.
   */
  redisPasswordFile: { path: string; required: boolean };
  databaseUrl: string;
  libvirtUri: string;
  virtType: 'auto' | 'kvm' | 'qemu' | 'test';
  networkCidr: string;
  uplink: string;
  /** Public addresses for Elastic IPs (a CIDR or first-last range on the uplink), or null. */
  elasticIpPool: string | null;
  gpuDevices: string[];
  workerConcurrency: number;
  stopTimeoutMs: number;
  reconcileIntervalMs: number;
  /** A reconcile pass running longer is abandoned; the next one runs on schedule. */
  reconcileTimeoutMs: number;
  /** Deadline of one libvirt operation (virsh runs get twice this). */
  libvirtTimeoutMs: number;
  /** Native libvirt calls in flight at most (each holds a thread of libuv's pool). */
  libvirtMaxCalls: number;
  terminatedRetentionMs: number;
  defaultImage: string | undefined;
  maxUserDataBytes: number;
  maxVolumeGiB: number;
  /** LVM volume group for volumes; unset: qcow2 files under the data directory. */
  volumeGroup: string | undefined;
  thinPool: string;
  /** Local directories images may be registered from (the API refuses other local paths). */
  imageImportDirs: string[];
  /** Image import by URL: what it may reach beyond public addresses, how big, how long. */
  imageImport: {
    allow: OutboundAllowList;
    maxBytes: number;
    connectTimeoutMs: number;
    idleTimeoutMs: number;
    totalTimeoutMs: number;
  };
  paths: {
    images: string;
    instances: string;
    networks: string;
    volumes: string;
    snapshots: string;
    adminKeyFile: string;
  };
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid minicloud settings:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

export function loadConfig(env: Record<string, string | undefined>): Config {
  const cleaned = Object.fromEntries(
    Object.entries(env).filter(([k, v]) => k.startsWith('MINICLOUD_') && v !== ''),
  );
  const parsed = schema.safeParse(cleaned);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`));
  }
  const e = parsed.data;
  const sep = e.MINICLOUD_LISTEN.lastIndexOf(':');
  const dataDir = e.MINICLOUD_DATA_DIR.replace(/\/+$/, '');
  return {
    listenHost: e.MINICLOUD_LISTEN.slice(0, sep).replace(/^\[|\]$/g, ''),
    listenPort: Number(e.MINICLOUD_LISTEN.slice(sep + 1)),
    dataDir,
    prefix: e.MINICLOUD_PREFIX,
    adminKey: e.MINICLOUD_ADMIN_KEY,
    redisUrl: e.MINICLOUD_REDIS_URL,
    redisPasswordFile: {
      path: e.MINICLOUD_REDIS_PASSWORD_FILE ?? DEFAULT_REDIS_PASSWORD_FILE,
      required: e.MINICLOUD_REDIS_PASSWORD_FILE !== undefined,
    },
    databaseUrl: e.MINICLOUD_DATABASE_URL ?? `file:${join(dataDir, 'minicloud.db')}`,
    libvirtUri: e.MINICLOUD_LIBVIRT_URI,
    virtType: e.MINICLOUD_VIRT_TYPE,
    networkCidr: e.MINICLOUD_NETWORK_CIDR,
    uplink: e.MINICLOUD_UPLINK,
    elasticIpPool: e.MINICLOUD_ELASTIC_IP_POOL ?? null,
    gpuDevices: e.MINICLOUD_GPU_DEVICES.split(',').filter(Boolean),
    workerConcurrency: e.MINICLOUD_WORKER_CONCURRENCY,
    stopTimeoutMs: e.MINICLOUD_STOP_TIMEOUT_SECONDS * 1000,
    reconcileIntervalMs: e.MINICLOUD_RECONCILE_INTERVAL_SECONDS * 1000,
    reconcileTimeoutMs: e.MINICLOUD_RECONCILE_TIMEOUT_SECONDS * 1000,
    libvirtTimeoutMs: e.MINICLOUD_LIBVIRT_TIMEOUT_SECONDS * 1000,
    libvirtMaxCalls: e.MINICLOUD_LIBVIRT_MAX_CALLS,
    terminatedRetentionMs: e.MINICLOUD_TERMINATED_RETENTION_MINUTES * 60_000,
    defaultImage: e.MINICLOUD_DEFAULT_IMAGE,
    maxUserDataBytes: e.MINICLOUD_MAX_USER_DATA_BYTES,
    maxVolumeGiB: e.MINICLOUD_MAX_VOLUME_GIB,
    volumeGroup: e.MINICLOUD_VOLUME_GROUP,
    thinPool: e.MINICLOUD_THIN_POOL,
    imageImportDirs: [
      ...e.MINICLOUD_IMAGE_IMPORT_DIRS.split(',').filter(Boolean),
      ...(e.MINICLOUD_DEFAULT_IMAGE ? [dirname(e.MINICLOUD_DEFAULT_IMAGE)] : []),
    ].map((d) => d.replace(/\/+$/, '') || '/'),
    imageImport: {
      allow: parseOutboundAllowList(e.MINICLOUD_IMAGE_IMPORT_ALLOW).allow,
      maxBytes: e.MINICLOUD_IMAGE_MAX_GIB * 1024 ** 3,
      connectTimeoutMs: e.MINICLOUD_IMAGE_IMPORT_CONNECT_TIMEOUT_SECONDS * 1000,
      idleTimeoutMs: e.MINICLOUD_IMAGE_IMPORT_IDLE_TIMEOUT_SECONDS * 1000,
      totalTimeoutMs: e.MINICLOUD_IMAGE_IMPORT_TIMEOUT_MINUTES * 60_000,
    },
    paths: {
      images: join(dataDir, 'images'),
      instances: join(dataDir, 'instances'),
      networks: join(dataDir, 'networks'),
      volumes: join(dataDir, 'volumes'),
      snapshots: join(dataDir, 'snapshots'),
      adminKeyFile: join(dataDir, 'admin-key'),
    },
  };
}
