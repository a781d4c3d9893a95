import { link, mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { HostCommandError, type CommandRunner, fsyncPath, pathExists } from '@minicloud/host';
import {
  buildBackupXml,
  buildDiskXml,
  DISK_TARGET_RE,
  parseDomainDisks,
  parseDomBlkInfo,
  parseDomJobInfo,
  type AttachDiskSpec,
  type DomainDisk,
  type DomJobInfo,
} from './disk-xml.js';
import { assertSafePath, IOTUNE_FIELDS, validateIoTune, type IoTune } from './domain-xml.js';
import { HypervisorError, type HypervisorErrorCode } from './errors.js';

/**
 * Disk operations on a domain: hot-plug, unplug, live resize, I/O limits, live backup.
 *
 * The @unraid/libvirt binding has none of virDomainAttachDeviceFlags, virDomainDetachDeviceFlags,
 * virDomainBlockResize, virDomainSetBlockIoTune, virDomainBackupBegin or virDomainGetJobStats,
 * so these go through `virsh` (via @minicloud/host: argv only, never a shell; device and backup
 * XML in a private temp file, since virsh reads them from a path and Node's child stdin is a
 * socket that /dev/stdin cannot open). Reading domain XML goes through the binding.
 *
 * Config and live state are handled separately, so every call is idempotent and finishes what
 * an interrupted earlier call left half done (e.g. attached in the config but not yet live).
 */

export type ActiveState = 'running' | 'paused' | 'shutoff' | 'crashed' | 'other';

/** What the disk operations need from the hypervisor driver. */
export interface DiskOpsHost {
  readonly uri: string;
  readonly run: CommandRunner;
  /** Default timeout of one virsh run (a stuck libvirtd makes virsh hang; it is killed). */
  readonly virshTimeoutMs?: number;
  /**
   * Domain XML; inactive: the persistent config; otherwise the live definition (libvirt returns
   * the config when the domain is off). null when the domain is not defined.
   */
  domainXml(name: string, inactive: boolean): Promise<string | null>;
  getState(name: string): Promise<ActiveState | null>;
}

export interface AttachDiskOptions {
  /** Also hot-plug into the running guest (ignored when the domain is not running). */
  live: boolean;
}

export interface AttachDiskResult {
  /** 'present': the config already had this disk at this target. */
  config: 'attached' | 'present';
  live: 'attached' | 'present' | 'not-running' | 'not-requested';
}

export interface DetachDiskOptions {
  /** Also unplug from the running guest (ignored when the domain is not running). */
  live: boolean;
  /** How long to wait for the guest to release the device (ACPI PCI unplug). */
  timeoutMs: number;
  /** Poll interval of the live XML (default 200 ms). */
  pollMs?: number;
  /** Send the unplug request again this often while waiting (default 5 s). */
  resendMs?: number;
  /**
   * On timeout, remove the disk from the persistent config anyway and return live: 'pending'
   * instead of throwing DetachTimeout. QEMU keeps the device (and the volume open) until the
   * guest acks the unplug or the domain is stopped: the caller must not attach the volume
   * elsewhere before listDisks({ live: true }) no longer shows it, or the domain is stopped.
   * (A virtio-blk PCI device cannot be pulled from QEMU without the guest: there is no
   * surprise-removal path for it.)
   */
  force?: boolean;
}

export interface DetachDiskResult {
  config: 'detached' | 'absent';
  live: 'detached' | 'absent' | 'pending' | 'not-running' | 'not-requested';
}

export interface SetIoTuneOptions {
  /** Also apply to the running guest (ignored when the domain is not running). */
  live: boolean;
}

export interface SetIoTuneResult {
  config: boolean;
  live: boolean;
}

export interface BackupDiskOptions {
  /** Abort the backup job (and fail with BackupTimeout) after this long. */
  timeoutMs: number;
  /** Poll interval of the job state (default 100 ms). */
  pollMs?: number;
}

export interface BackupDiskResult {
  /** false: destPath already existed (an earlier call finished); nothing was done. */
  created: boolean;
  durationMs: number;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function stderrOf(e: unknown): string {
  if (e instanceof HostCommandError) return e.stderr.trim() || e.message;
  return e instanceof Error ? e.message : String(e);
}

/**
 * The HypervisorError code for what virsh printed about a disk operation (libvirt 9.0's
 * messages). Pure, table-tested.
 */
export function classifyVirshDiskError(stderr: string): HypervisorErrorCode {
  if (/failed to get domain|Domain not found|no domain with matching/i.test(stderr)) {
    return 'DomainNotFound';
  }
  if (/domain is not running|domain '[^']*' not running/i.test(stderr)) return 'DomainNotRunning';
  if (
    /No disk found whose source path or target is|missing persistent configuration for disk|invalid path \S+ not assigned to domain|disk '?[^' ]*'? (was )?not found|not found in domain|No device with bus '.*' and target/i.test(
      stderr,
    )
  ) {
    return 'DiskNotFound';
  }
  if (/target \S+ already exists|Target \S+ already exists/i.test(stderr)) {
    return 'DiskTargetInUse';
  }
  return 'LibvirtError';
}

/** The unplug of this device was already requested and is still in progress. */
export function isUnplugPendingError(stderr: string): boolean {
  return /in the process of unplug|already .*unplug|unplug .*in progress|device_del .*pending|operation (is )?(already )?in progress/i.test(
    stderr,
  );
}

function isActive(state: ActiveState | null): boolean {
  return state === 'running' || state === 'paused';
}

function assertTarget(target: string): void {
  if (typeof target !== 'string' || !DISK_TARGET_RE.test(target)) {
    throw new HypervisorError('InvalidDiskSpec', `invalid disk target ${JSON.stringify(target)}`);
  }
}

/** virsh blkdeviotune options for `iotune`, every limit explicit (0 clears). Pure. */
export function blkdeviotuneArgs(iotune: IoTune): string[] {
  validateIoTune(iotune);
  const args: string[] = [];
  for (const [key, name] of IOTUNE_FIELDS) {
    args.push(`--${name.replace(/_/g, '-')}`, String(iotune[key] ?? 0));
  }
  return args;
}

export class DiskOps {
  constructor(private readonly host: DiskOpsHost) {}

  /** Run virsh; `{xml}` in args is replaced by the path of a temp file holding options.xml. */
  private async virsh(
    args: string[],
    what: string,
    options: { xml?: string; timeoutMs?: number } = {},
  ): Promise<string> {
    if (this.host.uri.startsWith('test:')) {
      // libvirt's test driver lives inside this process: virsh would talk to another one.
      throw new HypervisorError('NotSupported', `${what}: not supported on the test driver`);
    }
    let dir: string | null = null;
    try {
      let argv = args;
      if (options.xml !== undefined) {
        dir = await mkdtemp(join(tmpdir(), 'minicloud-virsh-')); // 0700
        const file = join(dir, 'device.xml');
        await writeFile(file, options.xml, { mode: 0o600 });
        argv = args.map((a) => (a === '{xml}' ? file : a));
      }
      const r = await this.host.run('virsh', ['-c', this.host.uri, ...argv], {
        timeoutMs: options.timeoutMs ?? this.host.virshTimeoutMs ?? 60_000,
      });
      return r.stdout;
    } catch (e) {
      if (e instanceof HypervisorError) throw e;
      const text = stderrOf(e);
      if (e instanceof HostCommandError && e.timedOut) {
        throw new HypervisorError('LibvirtTimeout', `${what}: ${e.message}`, e);
      }
      throw new HypervisorError(classifyVirshDiskError(text), `${what}: ${text}`, e);
    } finally {
      if (dir) await rm(dir, { recursive: true, force: true });
    }
  }

  private async disks(name: string, inactive: boolean): Promise<DomainDisk[] | null> {
    const xml = await this.host.domainXml(name, inactive);
    return xml === null ? null : parseDomainDisks(xml);
  }

  async listDisks(name: string, options: { live: boolean }): Promise<DomainDisk[]> {
    const disks = await this.disks(name, !options.live);
    if (disks === null) throw new HypervisorError('DomainNotFound', `domain ${name} not defined`);
    return disks;
  }

  async attachDisk(
    name: string,
    disk: AttachDiskSpec,
    options: AttachDiskOptions,
  ): Promise<AttachDiskResult> {
    const xml = buildDiskXml(disk); // validates
    for (let attempt = 0; ; attempt++) {
      const config = await this.disks(name, true);
      if (config === null) {
        throw new HypervisorError('DomainNotFound', `attach ${disk.target}: ${name} not defined`);
      }
      const active = isActive(await this.host.getState(name));
      const live = options.live && active ? await this.disks(name, false) : null;
      const inConfig = checkAttachable(config, disk, 'config');
      const inLive = live === null ? false : checkAttachable(live, disk, 'live');
      const liveResult: AttachDiskResult['live'] = !options.live
        ? 'not-requested'
        : live === null
          ? 'not-running'
          : inLive
            ? 'present'
            : 'attached';
      const flags = [...(inConfig ? [] : ['--config']), ...(live && !inLive ? ['--live'] : [])];
      if (flags.length === 0) return { config: 'present', live: liveResult };
      try {
        // libvirt does --live + --config together: the live attach first; if it fails,
        // the config is left unchanged.
        await this.virsh(
          ['attach-device', '--domain', name, '--file', '{xml}', ...flags],
          `attach ${disk.target} to ${name}`,
          { xml },
        );
      } catch (e) {
        // The domain stopped (or started) between our look and the attach: look again, once.
        if (attempt === 0 && (e as HypervisorError).code === 'DomainNotRunning') continue;
        throw e;
      }
      return { config: inConfig ? 'present' : 'attached', live: liveResult };
    }
  }

  async detachDisk(
    name: string,
    target: string,
    options: DetachDiskOptions,
  ): Promise<DetachDiskResult> {
    assertTarget(target);
    const { timeoutMs, pollMs = 200, resendMs = 5_000, force = false } = options;
    const config = await this.disks(name, true);
    if (config === null) {
      throw new HypervisorError('DomainNotFound', `detach ${target}: ${name} not defined`);
    }
    let live: DetachDiskResult['live'] = options.live ? 'not-running' : 'not-requested';
    if (options.live && isActive(await this.host.getState(name))) {
      live = await this.unplug(name, target, timeoutMs, pollMs, resendMs);
      if (live === 'pending' && !force) {
        throw new HypervisorError(
          'DetachTimeout',
          `detach ${target} from ${name}: the guest did not release the disk within ${timeoutMs} ms ` +
            `(the unplug request stays pending; the disk is still attached)`,
        );
      }
    }
    let configResult: DetachDiskResult['config'] = 'absent';
    if (config.some((d) => d.target === target)) {
      try {
        await this.virsh(
          ['detach-disk', '--domain', name, '--target', target, '--config'],
          `detach ${target} from the config of ${name}`,
        );
        configResult = 'detached';
      } catch (e) {
        if ((e as HypervisorError).code !== 'DiskNotFound') throw e;
      }
    }
    return { config: configResult, live };
  }

  /** Unplug from the running guest and wait until the live XML no longer has the disk. */
  private async unplug(
    name: string,
    target: string,
    timeoutMs: number,
    pollMs: number,
    resendMs: number,
  ): Promise<'detached' | 'absent' | 'pending'> {
    const deadline = Date.now() + timeoutMs;
    let sent = false;
    let nextSend = 0;
    for (;;) {
      const live = isActive(await this.host.getState(name)) ? await this.disks(name, false) : null;
      // Stopped meanwhile: the device is gone with the QEMU process.
      if (live === null) return sent ? 'detached' : 'absent';
      if (!live.some((d) => d.target === target)) return sent ? 'detached' : 'absent';
      const now = Date.now();
      if (now >= deadline && sent) return 'pending';
      if (now >= nextSend) {
        sent = true;
        nextSend = now + resendMs;
        try {
          // `detach-disk` = `detach-device` with the disk's own XML, taken by virsh from the
          // live definition. libvirt waits up to 5 s for the guest's ack, then returns with the
          // request pending (the guest may still ack later): we poll either way.
          await this.virsh(
            ['detach-disk', '--domain', name, '--target', target, '--live'],
            `detach ${target} from ${name}`,
            { timeoutMs: Math.max(10_000, deadline - now + 5_000) },
          );
        } catch (e) {
          const err = e as HypervisorError;
          if (err.code === 'DomainNotRunning') continue;
          if (err.code !== 'DiskNotFound' && !isUnplugPendingError(err.message)) throw e;
        }
        continue;
      }
      await sleep(Math.max(10, Math.min(pollMs, deadline - Date.now(), nextSend - Date.now())));
    }
  }

  /**
   * Grow a disk of a running domain (QEMU resizes the image or checks the block device, and the
   * guest sees the new capacity at once). For an LV, lvextend it first. Not running:
   * DomainNotRunning (grow the volume offline through the storage driver instead).
   */
  async resizeDisk(
    name: string,
    target: string,
    newSizeBytes: number,
  ): Promise<'resized' | 'unchanged'> {
    assertTarget(target);
    if (!Number.isSafeInteger(newSizeBytes) || newSizeBytes <= 0 || newSizeBytes % 512 !== 0) {
      throw new HypervisorError(
        'InvalidDiskSpec',
        `disk size must be a positive multiple of 512 bytes, got ${JSON.stringify(newSizeBytes)}`,
      );
    }
    const state = await this.host.getState(name);
    if (state === null) throw new HypervisorError('DomainNotFound', `resize: ${name} not defined`);
    if (!isActive(state)) {
      throw new HypervisorError('DomainNotRunning', `resize ${target}: ${name} is ${state}`);
    }
    const info = parseDomBlkInfo(
      await this.virsh(['domblkinfo', '--domain', name, '--device', target], `resize ${target}`),
    );
    if (newSizeBytes < info.capacity) {
      throw new HypervisorError(
        'DiskShrinkNotSupported',
        `${name} ${target} is ${info.capacity} bytes; it cannot shrink to ${newSizeBytes}`,
      );
    }
    if (newSizeBytes === info.capacity) return 'unchanged';
    await this.virsh(
      ['blockresize', '--domain', name, '--path', target, '--size', `${newSizeBytes}B`],
      `resize ${target} of ${name}`,
    );
    return 'resized';
  }

  /** Set exactly these limits (absent = no limit) in the config and, if running, live. */
  async setDiskIoTune(
    name: string,
    target: string,
    iotune: IoTune,
    options: SetIoTuneOptions,
  ): Promise<SetIoTuneResult> {
    assertTarget(target);
    const limits = blkdeviotuneArgs(iotune); // validates
    const config = await this.disks(name, true);
    if (config === null) throw new HypervisorError('DomainNotFound', `iotune: ${name} not defined`);
    const live =
      options.live && isActive(await this.host.getState(name))
        ? await this.disks(name, false)
        : null;
    const inConfig = config.some((d) => d.target === target);
    const inLive = live?.some((d) => d.target === target) ?? false;
    if (!inConfig && !inLive) {
      throw new HypervisorError('DiskNotFound', `${name} has no disk ${target}`);
    }
    for (const [present, flag] of [
      [inConfig, '--config'],
      [inLive, '--live'],
    ] as const) {
      if (!present) continue;
      await this.virsh(
        ['blkdeviotune', '--domain', name, '--device', target, ...limits, flag],
        `iotune ${target} of ${name}`,
      );
    }
    return { config: inConfig, live: inLive };
  }

  private async jobInfo(name: string, completed: boolean): Promise<DomJobInfo> {
    return parseDomJobInfo(
      await this.virsh(
        ['domjobinfo', '--domain', name, ...(completed ? ['--completed'] : [])],
        `job info of ${name}`,
      ),
    );
  }

  /**
   * A crash-consistent, point-in-time copy of disk `target` of a running domain into a new
   * standalone qcow2 file `destPath`, while the guest keeps running and writing: libvirt's
   * backup API in push mode (QEMU's backup job with a copy-before-write filter: the copy holds
   * the disk as it was when the job started).
   *
   * Written to `<destPath>.partial` (owned by root, 0600 once libvirt is done) and linked to
   * destPath only after the job reported Completed; on any failure the partial file is removed
   * and BackupFailed/BackupTimeout thrown. Idempotent: an existing destPath means done.
   * A backup job of someone else still running on the domain is waited for (within timeoutMs).
   */
  async backupDisk(
    name: string,
    target: string,
    destPath: string,
    options: BackupDiskOptions,
  ): Promise<BackupDiskResult> {
    assertTarget(target);
    assertSafePath(destPath, 'backup destination');
    const started = Date.now();
    const deadline = started + options.timeoutMs;
    const pollMs = options.pollMs ?? 100;
    if (await pathExists(destPath)) return { created: false, durationMs: 0 };

    const state = await this.host.getState(name);
    if (state === null) throw new HypervisorError('DomainNotFound', `backup: ${name} not defined`);
    if (!isActive(state)) {
      throw new HypervisorError('DomainNotRunning', `backup ${target}: ${name} is ${state}`);
    }
    const live = await this.disks(name, false);
    if (!live?.some((d) => d.target === target)) {
      throw new HypervisorError('DiskNotFound', `${name} has no disk ${target}`);
    }
    const partial = `${destPath}.partial`;
    const xml = buildBackupXml(
      live.map((d) => d.target),
      target,
      partial,
    );

    const waitForNoJob = async () => {
      for (;;) {
        const job = await this.jobInfo(name, false);
        if (job.type === 'None') return true;
        if (Date.now() >= deadline) return false;
        await sleep(pollMs);
      }
    };

    try {
      if (!(await waitForNoJob())) {
        throw new HypervisorError(
          'BackupTimeout',
          `backup ${target} of ${name}: another job is still running on the domain`,
        );
      }
      await rm(partial, { force: true }); // left by a crashed earlier attempt
      try {
        await this.virsh(
          ['backup-begin', '--domain', name, '--backupxml', '{xml}'],
          `backup ${target} of ${name}`,
          { xml },
        );
      } catch (e) {
        const err = e as HypervisorError;
        if (err.code === 'LibvirtError') {
          throw new HypervisorError('BackupFailed', err.message, err.cause ?? e);
        }
        throw e;
      }
      if (!(await waitForNoJob())) {
        await this.virsh(['domjobabort', '--domain', name], `abort backup of ${name}`).catch(
          () => undefined,
        );
        const end = Date.now() + 30_000;
        while (Date.now() < end && (await this.jobInfo(name, false)).type !== 'None') {
          await sleep(pollMs);
        }
        throw new HypervisorError(
          'BackupTimeout',
          `backup ${target} of ${name} did not finish within ${options.timeoutMs} ms (aborted)`,
        );
      }
      // Completed-job statistics are consumed by reading them: read them exactly once.
      const done = await this.jobInfo(name, true);
      if (done.type !== 'Completed' || (done.operation !== null && done.operation !== 'Backup')) {
        throw new HypervisorError(
          'BackupFailed',
          `backup ${target} of ${name} ended as ${done.type}` +
            (done.operation ? ` (${done.operation})` : '') +
            (done.errorMessage ? `: ${done.errorMessage}` : ''),
        );
      }
      if (!(await pathExists(partial))) {
        throw new HypervisorError('BackupFailed', `backup of ${name} completed without ${partial}`);
      }
      await fsyncPath(partial);
      let created = true;
      try {
        await link(partial, destPath);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        created = false; // a concurrent call finished first
      }
      await fsyncPath(dirname(destPath));
      return { created, durationMs: Date.now() - started };
    } finally {
      // After success the partial is a second link to destPath; after a failure, garbage.
      await unlink(partial).catch(() => undefined);
    }
  }
}

/**
 * Whether `disk` is already attached at its target in `disks` (true), free (false), or in
 * conflict (throws DiskTargetInUse / DiskAlreadyAttached).
 */
function checkAttachable(disks: DomainDisk[], disk: AttachDiskSpec, where: string): boolean {
  const atTarget = disks.find((d) => d.target === disk.target);
  if (atTarget && atTarget.path !== disk.path) {
    throw new HypervisorError(
      'DiskTargetInUse',
      `${disk.target} is taken by ${atTarget.path ?? 'an empty drive'} (${where})`,
    );
  }
  const elsewhere = disks.find((d) => d.path === disk.path && d.target !== disk.target);
  if (elsewhere) {
    throw new HypervisorError(
      'DiskAlreadyAttached',
      `${disk.path} is already attached as ${elsewhere.target} (${where})`,
    );
  }
  return atTarget !== undefined;
}
