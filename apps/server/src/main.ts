import { KeyedLock, vpcBridgeName } from '@minicloud/domain';
import type { Server } from 'node:http';
import { loadConfig, ConfigError, type Config } from '@minicloud/config';
import {
  applyMigrations,
  isDatabaseUnavailable,
  migrationsDirFor,
  openDatabase,
} from '@minicloud/db';
import { fileURLToPath } from 'node:url';
import { JobQueue } from '@minicloud/queue';
import { run } from '@minicloud/host';
import { detectVirtType, LibvirtHypervisor, qemuProcessOwner } from '@minicloud/hypervisor';
import { LinuxNetworkDriver } from '@minicloud/network';
import { FileVolumeDriver, ImageStore, LvmVolumeDriver } from '@minicloud/storage';
import { createApiApp } from '@minicloud/app-api';
import { ImageService } from '@minicloud/app-api/images';
import { NetworkService } from '@minicloud/app-api/networks';
import { AddressService } from '@minicloud/app-api/addresses';
import { removeAllNetworks, startWorker, tearDown, type WorkerDeps } from '@minicloud/app-worker';
import { ensureAdminKey } from './admin-key.js';
import { redactedUrl, redisConnection, waitForDependency } from './dependencies.js';
import { isRole, ROLES } from './roles.js';
import { readUplinkAddresses } from './uplink.js';
import { adminKeyBanner } from './admin-key-banner.js';
import { prepareDataDir } from './data-dir.js';

/**
 * The minicloud daemon: API and worker in one process by default.
 *   main.ts [serve] [--role all|api|worker]   run in the foreground
 *   main.ts teardown                          remove everything this installation made on the host
 */
const log = (msg: string, err?: unknown) => {
  const detail = err ? ` ${(err as Error)?.stack ?? String(err)}` : '';
  process.stdout.write(`${new Date().toISOString()} ${msg}${detail}\n`);
};

async function uplinkOf(config: Config): Promise<string | null> {
  if (config.uplink === 'none') return null;
  if (config.uplink !== 'auto') return config.uplink;
  const { stdout } = await run('ip', ['-j', 'route', 'show', 'default']);
  const routes = JSON.parse(stdout || '[]') as { dev?: string }[];
  return routes[0]?.dev ?? null;
}

async function main() {
  const argv = process.argv.slice(2);
  const command = argv[0] && !argv[0].startsWith('-') ? argv[0] : 'serve';
  const roleArg = argv.indexOf('--role');
  const role = roleArg >= 0 ? argv[roleArg + 1] : 'all';
  if (!isRole(role)) throw new Error(`--role must be ${ROLES.join(', ')}`);

  const config = loadConfig(process.env);
  const virt = detectVirtType({ override: config.virtType });
  const qemu = await qemuProcessOwner(config.libvirtUri, virt.virtType);
  await prepareDataDir(config, qemu?.gid ?? null);
  const repoRoot = fileURLToPath(new URL('../../..', import.meta.url));
  const migrations = migrationsDirFor(config.databaseUrl, repoRoot);
  // Start-up waits for the database and Redis, saying what it waits for (never a silent hang).
  const applied = await waitForDependency(
    'the database',
    () => applyMigrations(config.databaseUrl, migrations),
    log,
    { isTransient: isDatabaseUnavailable },
  );
  if (applied.length) log(`database: applied migrations ${applied.join(', ')}`);
  const db = await openDatabase(config.databaseUrl);
  await waitForDependency('the database', () => db.$queryRawUnsafe('SELECT 1'), log, {
    isTransient: isDatabaseUnavailable,
  });
  const redis = await redisConnection(config);
  const queue = new JobQueue({ connection: redis, prefix: `minicloud-${config.prefix}` });

  const uplink = await uplinkOf(config);
  const hypervisor = new LibvirtHypervisor({
    uri: config.libvirtUri,
    callTimeoutMs: config.libvirtTimeoutMs,
    maxConcurrentCalls: config.libvirtMaxCalls,
    log,
  });
  const threadPool = Number(process.env.UV_THREADPOOL_SIZE) || 4;
  if (config.libvirtMaxCalls >= threadPool)
    log(
      `warning: MINICLOUD_LIBVIRT_MAX_CALLS=${config.libvirtMaxCalls} >= UV_THREADPOOL_SIZE=${threadPool}: a wedged libvirtd can stall file I/O`,
    );
  const network = new LinuxNetworkDriver();
  const images = new ImageStore({
    imagesDir: config.paths.images,
    allowLocalSourcesUnder: config.imageImportDirs,
    maxImageBytes: config.imageImport.maxBytes,
    download: {
      allow: config.imageImport.allow,
      connectTimeoutMs: config.imageImport.connectTimeoutMs,
      idleTimeoutMs: config.imageImport.idleTimeoutMs,
      totalTimeoutMs: config.imageImport.totalTimeoutMs,
    },
  });
  const rootVolumes = new FileVolumeDriver({
    volumesDir: config.paths.volumes,
    snapshotsDir: config.paths.snapshots,
  });
  const volumes = config.volumeGroup
    ? new LvmVolumeDriver({ volumeGroup: config.volumeGroup, thinPool: config.thinPool })
    : rootVolumes;
  const workerDeps: WorkerDeps = {
    volumes,
    rootVolumes,
    db,
    queue,
    hypervisor,
    network,
    images,
    locks: new KeyedLock(),
    log,
    settings: {
      prefix: config.prefix,
      virtType: virt.virtType,
      instancesDir: config.paths.instances,
      volumesDir: config.paths.volumes,
      stopTimeoutMs: config.stopTimeoutMs,
      terminatedRetentionMs: config.terminatedRetentionMs,
      networksDir: config.paths.networks,
      uplink,
      qemuGid: qemu?.gid ?? null,
    },
  };

  if (command === 'teardown') {
    await teardown(workerDeps);
    await Promise.all([
      queue.obliterate().catch((e) => log('teardown: the queue was not emptied', e)),
      db.$disconnect(),
    ]);
    await queue.close();
    await hypervisor.close();
    return;
  }
  if (command !== 'serve') throw new Error(`unknown command ${command}`);
  await waitForDependency(
    `Redis at ${redactedUrl(config.redisUrl)}`,
    () => queue.assertAvailable(),
    log,
  );

  const closers: (() => Promise<void>)[] = [];
  const admin = await ensureAdminKey(config.adminKey, config.paths.adminKeyFile);
  const serviceContext = {
    db,
    queue,
    settings: {
      prefix: config.prefix,
      defaultVpcCidr: config.networkCidr,
      gpuDevices: config.gpuDevices,
      maxUserDataBytes: config.maxUserDataBytes,
      terminatedRetentionMs: config.terminatedRetentionMs,
      instancesDir: config.paths.instances,
      imageImportDirs: config.imageImportDirs,
      imageImportAllow: config.imageImport.allow,
      maxVolumeGiB: config.maxVolumeGiB,
      // No public pool may hold the uplink's own addresses or its gateway.
      uplinkAddresses: uplink
        ? await readUplinkAddresses(uplink).catch((e: unknown) => {
            log(`uplink ${uplink}: addresses not readable, pools are not checked against them`, e);
            return [];
          })
        : [],
    },
  };

  // The default VPC (with its subnet and internet gateway) and the Elastic IP pool exist before
  // anything launches; the worker's first reconcile makes them real on the host.
  const defaultVpc = await new NetworkService(serviceContext).ensureDefaultVpc();
  if (config.elasticIpPool)
    await new AddressService(serviceContext).ensurePool(config.elasticIpPool);
  log(
    `network: default VPC ${defaultVpc.vpcId} (subnet ${defaultVpc.subnetId}) on bridge ${vpcBridgeName(config.prefix, defaultVpc.vpcId)}, uplink ${uplink ?? 'none'}, Elastic IP pool ${config.elasticIpPool ?? 'none'}`,
  );

  if (role === 'all' || role === 'worker') {
    log(
      `virtualisation: ${virt.virtType === 'kvm' ? 'kvm' : virt.virtType === 'qemu' ? 'TCG (qemu)' : virt.virtType} (${virt.reason})`,
    );
    const allowed = [
      ...config.imageImport.allow.hosts,
      ...config.imageImport.allow.blocks.map((b) => b.text),
    ];
    log(
      `image import by URL: public addresses${allowed.length ? ` and ${allowed.join(', ')} (MINICLOUD_IMAGE_IMPORT_ALLOW)` : ' only'}, up to ${config.imageImport.maxBytes / 1024 ** 3} GiB`,
    );
    const worker = await startWorker(workerDeps, {
      connection: redis,
      prefix: `minicloud-${config.prefix}`,
      concurrency: config.workerConcurrency,
      reconcileIntervalMs: config.reconcileIntervalMs,
      reconcileTimeoutMs: config.reconcileTimeoutMs,
    });
    closers.push(() => worker.close());
    if (config.defaultImage)
      await registerDefaultImage(new ImageService(serviceContext), config.defaultImage);
  }

  if (role === 'all' || role === 'api') {
    const app = createApiApp({
      ...serviceContext,
      adminKey: admin.key,
      log,
      // The worker's dependency; an API-only process does not talk to libvirt.
      healthChecks:
        role === 'all' ? { libvirt: () => hypervisor.listDomains(`${config.prefix}-`) } : {},
    });
    const server: Server = await new Promise((resolve, reject) => {
      const s = app.listen(config.listenPort, config.listenHost, () => resolve(s));
      s.on('error', reject);
    });
    closers.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    log(
      `minicloud API listening on http://${config.listenHost}:${config.listenPort}/v1 (OpenAPI: /v1/openapi.json)`,
    );
    log(adminKeyBanner(admin, config.paths.adminKeyFile));
  }
  log('minicloud ready');

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: shutting down (guests keep running)`);
    for (const close of closers.reverse()) await close().catch((e) => log('close failed', e));
    await queue.close();
    await hypervisor.close();
    await db.$disconnect();
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
}

async function registerDefaultImage(images: ImageService, path: string) {
  const name = 'minicloud-test-image';
  const existing = (await images.describe()).find((i) => i.name === name && i.state !== 'failed');
  if (existing) {
    log(`default image: ${existing.imageId} (${name}, ${existing.state})`);
    return;
  }
  const image = await images.register({
    name,
    source: path,
    description: 'minicloud busybox test image',
    isDefault: true,
  });
  log(`default image: ${image.imageId} (${name}) registering from ${path}`);
}

/**
 * Remove every domain, instance directory and network object of this installation: Elastic IP
 * addresses on the uplink, then everything carrying its prefix (taps, bridges, dnsmasq, nft
 * tables, also those an older version made) and the networks' state directories.
 */
async function teardown(deps: WorkerDeps) {
  const { prefix } = deps.settings;
  for (const d of await deps.hypervisor.listDomains(`${prefix}-`))
    await deps.hypervisor.undefine(d.name);
  const instances = await deps.db.instance.findMany({ select: { id: true } });
  for (const i of instances) await tearDown(deps, i.id);
  for (const what of await removeAllNetworks(deps)) log(`teardown: removed ${what}`);
  log(`teardown of prefix ${prefix} done`);
}

main().catch((e) => {
  if (e instanceof ConfigError) {
    process.stderr.write(`${e.message}\n`);
    process.exit(2);
  }
  log('fatal', e);
  process.exit(1);
});
