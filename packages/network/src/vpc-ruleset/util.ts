import { ipToInt } from '@minicloud/domain';

/** Address order, shared by validation, rendering and Elastic IP updates. */

export function byIp(a: string, b: string): number {
  return ipToInt(a) - ipToInt(b);
}

/** Sort by an address, converting each address once (ipToInt validates, so it is not free). */
export function sortedByIp<T>(xs: readonly T[], key: (x: T) => string): T[] {
  return xs
    .map((x) => ({ x, n: ipToInt(key(x)) }))
    .sort((a, b) => a.n - b.n)
    .map((e) => e.x);
}
