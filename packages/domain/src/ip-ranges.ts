import { intToIp, ipToInt } from './ipam.js';

/** A first-last address range (e.g. a public address pool) as the fewest CIDRs covering exactly it. */
export function rangeToCidrs(firstIp: string, lastIp: string): string[] {
  let n = ipToInt(firstIp);
  const last = ipToInt(lastIp);
  const out: string[] = [];
  while (n <= last) {
    let size = 32;
    // The largest block that starts at n (aligned) and ends at or before last.
    while (size > 0) {
      const block = 2 ** (32 - (size - 1));
      if (n % block !== 0 || n + block - 1 > last) break;
      size--;
    }
    out.push(`${intToIp(n)}/${size}`);
    n += 2 ** (32 - size);
  }
  return out;
}
