/**
 * Errors of the hypervisor driver. `code` is EC2-like and stable; callers (jobs, the reconciler)
 * branch on it, never on message text.
 *
 * The @unraid/libvirt binding drops libvirt's numeric error codes (every LibvirtError it throws
 * has code -1): only `virGetLastError()->message` survives. So "domain not found" and friends are
 * recognised from libvirt's message formats (virerror.c; stable for years, and untranslated
 * because neither Node nor libvirt call setlocale()). The patterns live here, in one place,
 * with table tests.
 */
export type HypervisorErrorCode =
  | 'InvalidDomainSpec'
  | 'DomainNotFound'
  | 'DomainNotRunning'
  | 'DomainNameConflict'
  | 'LibvirtConnectionError'
  /** libvirtd did not answer within the deadline (the call was abandoned; it may still run). */
  | 'LibvirtTimeout'
  | 'LibvirtError'
  // disks (disk-ops.ts)
  /** A bad disk / iotune / backup request: nothing reached libvirt. */
  | 'InvalidDiskSpec'
  /** The domain has no disk at that target. */
  | 'DiskNotFound'
  /** The target is taken by another source (attachDisk). */
  | 'DiskTargetInUse'
  /** The source is already attached to this domain at another target. */
  | 'DiskAlreadyAttached'
  /** The guest did not release a hot-unplugged disk in time (it stays attached). */
  | 'DetachTimeout'
  /** blockresize to a smaller size. */
  | 'DiskShrinkNotSupported'
  /** The backup job (live snapshot) failed or was cancelled; nothing was written. */
  | 'BackupFailed'
  /** The backup job did not finish in time; it was aborted; nothing was written. */
  | 'BackupTimeout'
  /** The operation needs virsh, which cannot reach libvirt's per-process test driver. */
  | 'NotSupported';

export class HypervisorError extends Error {
  constructor(
    readonly code: HypervisorErrorCode,
    message: string,
    override readonly cause?: unknown,
  ) {
    super(message);
    this.name = 'HypervisorError';
  }
}

function messageOf(e: unknown): string {
  if (e instanceof Error) return e.message;
  if (typeof e === 'string') return e;
  return String(e);
}

/** VIR_ERR_NO_DOMAIN: "Domain not found" / "Domain not found: no domain with matching name 'x'". */
export function isDomainNotFoundError(e: unknown): boolean {
  if (e instanceof HypervisorError) return e.code === 'DomainNotFound';
  const m = messageOf(e);
  return /^Domain not found\b/.test(m) || /\bno domain with matching (name|uuid|id)\b/.test(m);
}

/** VIR_ERR_OPERATION_INVALID "domain is not running" (qemu) / "domain 'x' not running" (test). */
export function isDomainNotRunningError(e: unknown): boolean {
  if (e instanceof HypervisorError) return e.code === 'DomainNotRunning';
  const m = messageOf(e);
  return /\bdomain is not running\b/.test(m) || /\bdomain '[^']*' not running\b/.test(m);
}

/** VIR_ERR_OPERATION_INVALID "domain is already running" (or "already active"). */
export function isDomainAlreadyRunningError(e: unknown): boolean {
  const m = messageOf(e);
  return (
    /\bdomain is already (running|active)\b/.test(m) ||
    /\bdomain '[^']*' is already (running|active)\b/.test(m)
  );
}

/** The connection to libvirtd is gone (daemon restarted, socket closed): reopen and retry. */
export function isConnectionError(e: unknown): boolean {
  const m = messageOf(e);
  return [
    /client socket is closed/i,
    /Cannot (recv|write) data/i,
    /End of file while reading data/i,
    /Broken pipe/i,
    /Connection reset by peer/i,
    /Failed to connect socket/i,
    /no connection driver available/i,
    /invalid connection pointer/i,
    /\bnot connected\b/i,
    /connection (is )?closed/i,
  ].some((re) => re.test(m));
}

/** Turn whatever the binding threw into a HypervisorError with a stable code. */
export function toHypervisorError(e: unknown, what: string): HypervisorError {
  if (e instanceof HypervisorError) return e;
  const m = messageOf(e);
  if (isDomainNotFoundError(e)) return new HypervisorError('DomainNotFound', `${what}: ${m}`, e);
  if (isDomainNotRunningError(e))
    return new HypervisorError('DomainNotRunning', `${what}: ${m}`, e);
  if (isConnectionError(e))
    return new HypervisorError('LibvirtConnectionError', `${what}: ${m}`, e);
  return new HypervisorError('LibvirtError', `${what}: ${m}`, e);
}
