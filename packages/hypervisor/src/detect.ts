import { closeSync, existsSync, openSync } from 'node:fs';
import type { VirtType } from './domain-xml.js';

export interface DetectVirtTypeOptions {
  /** 'auto' (default) detects; anything else wins. */
  override?: VirtType | 'auto';
  /** Default /dev/kvm. */
  kvmDevice?: string;
  /**
   * Present when KVM is the kvm_pvm module (nested virtualisation without hardware support, on
   * which a stock Debian kernel dies with "KVM internal error ... emulation failure").
   * Default /sys/module/kvm_pvm.
   */
  pvmMarker?: string;
}

export interface VirtTypeDecision {
  virtType: VirtType;
  reason: string;
}

/**
 * Decide how guests run: 'kvm' when /dev/kvm opens read-write and KVM is not kvm_pvm, else
 * 'qemu' (TCG, pure emulation: slow but works everywhere). Called once at startup; the reason
 * is meant to be logged.
 */
export function detectVirtType(options: DetectVirtTypeOptions = {}): VirtTypeDecision {
  const { override = 'auto', kvmDevice = '/dev/kvm', pvmMarker = '/sys/module/kvm_pvm' } = options;
  if (override !== 'auto') {
    if (!['kvm', 'qemu', 'test'].includes(override)) {
      throw new Error(
        `virt type override must be kvm, qemu, test or auto, got ${JSON.stringify(override)}`,
      );
    }
    return { virtType: override, reason: `virt type set to '${override}' by configuration` };
  }
  if (!existsSync(kvmDevice)) {
    return {
      virtType: 'qemu',
      reason: `${kvmDevice} does not exist: no KVM, using TCG (emulation)`,
    };
  }
  try {
    closeSync(openSync(kvmDevice, 'r+'));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? String(e);
    return {
      virtType: 'qemu',
      reason: `${kvmDevice} cannot be opened read-write (${code}): using TCG (emulation)`,
    };
  }
  if (existsSync(pvmMarker)) {
    return {
      virtType: 'qemu',
      reason: `kvm_pvm module loaded (${pvmMarker}): nested KVM without hardware support, using TCG`,
    };
  }
  return {
    virtType: 'kvm',
    reason: `${kvmDevice} is usable and KVM is hardware-backed: using KVM`,
  };
}
