import { ipToInt } from '@minicloud/domain';

/** Small helpers shared by validation, rendering, updates and read-back. */

export function isObject(x: unknown): x is Record<string, unknown> {
  return x !== null && typeof x === 'object';
}

export function sortIps(ips: readonly string[]): string[] {
  return ips
    .map((ip) => ({ ip, n: ipToInt(ip) }))
    .sort((a, b) => a.n - b.n)
    .map((x) => x.ip);
}

export function byText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
