import { assertBridgeName, assertTapName, normalizeMac, tapMacFor } from '@minicloud/domain';
import type { PortSpec } from '../driver.js';

/**
 * Pure: the `ip -batch` lines that make taps, and how to read which line failed. Each port is two
 * lines (create the tap; address, attach and up), so line N belongs to port floor((N-1)/2).
 */

export interface ValidPort {
  bridge: string;
  tap: string;
  /** The tap's MAC (the guest's with first octet 0xfe), when the guest's MAC is known. */
  address: string | undefined;
  multiQueue: boolean;
}

/** Validate names and MAC before anything runs. Throws NetworkValidationError. */
export function validatePort(port: PortSpec): ValidPort {
  return {
    bridge: assertBridgeName(port.bridge),
    tap: assertTapName(port.tap),
    address: port.mac === undefined ? undefined : tapMacFor(normalizeMac(port.mac)),
    multiQueue: port.multiQueue ?? false,
  };
}

/** `ip link set` arguments that address, attach and raise the tap. */
export function portSetArgs(p: ValidPort): string[] {
  return [
    'link',
    'set',
    'dev',
    p.tap,
    ...(p.address ? ['address', p.address] : []),
    'master',
    p.bridge,
    'up',
  ];
}

/** The two batch lines of a new tap. */
export function portBatchLines(p: ValidPort): [create: string, attach: string] {
  return [
    `tuntap add dev ${p.tap} mode tap${p.multiQueue ? ' multi_queue' : ''}`,
    portSetArgs(p).join(' '),
  ];
}

/** The batch input for these ports (one trailing newline). */
export function renderPortBatch(ports: readonly ValidPort[]): string {
  return `${ports.flatMap(portBatchLines).join('\n')}\n`;
}

/**
 * Where `ip -batch` stopped: it runs lines until the first failure and names it ("Command failed
 * -:N"). Which port it was and which of its two lines; null when stderr names no line.
 */
export function failedPortLine(stderr: string): { port: number; attach: boolean } | null {
  const m = /Command failed -:([0-9]+)\b/.exec(stderr);
  if (!m) return null;
  const line = Number(m[1]);
  return { port: Math.floor((line - 1) / 2), attach: line % 2 === 0 };
}
