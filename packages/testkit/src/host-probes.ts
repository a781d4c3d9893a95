/** What a test can see from the host: links, addresses, routes, and TCP from the test process. */
import { randomInt } from 'node:crypto';
import { Socket } from 'node:net';
import { run } from '@minicloud/host';

/** Destinations of every IPv4 route of the host's namespace (all tables). */
export async function routeDestinations(): Promise<string[]> {
  const routes = JSON.parse(
    (await run('ip', ['-j', '-4', 'route', 'show', 'table', 'all'])).stdout,
  );
  return (routes as { dst?: string }[]).map((r) => r.dst ?? '');
}

/**
 * `count` distinct second octets o for 10.o.0.0/16 ranges no route of the host touches: random,
 * within 20-199 (outside the default VPC's 10.200-249).
 */
export async function freeSecondOctets(count: number): Promise<number[]> {
  const routes = (await routeDestinations()).join(' ');
  const free = (o: number) => !routes.includes(`10.${o}.`);
  for (let i = 0; i < 100; i++) {
    const picked = Array.from({ length: count }, () => randomInt(20, 200));
    if (new Set(picked).size === count && picked.every(free)) return picked;
  }
  throw new Error(`no ${count} free 10.x.0.0/16 range(s) found on this host`);
}

export async function linkExists(name: string): Promise<boolean> {
  return (await run('ip', ['link', 'show', 'dev', name], { okExitCodes: [1] })).exitCode === 0;
}

/** IPv4 addresses (with prefix length, sorted) on a host interface; none if it is missing. */
export async function addressesOf(dev: string): Promise<string[]> {
  const r = await run('ip', ['-j', '-4', 'addr', 'show', 'dev', dev], { okExitCodes: [1] });
  if (r.exitCode !== 0) return [];
  return (JSON.parse(r.stdout) as { addr_info?: { local: string; prefixlen: number }[] }[])
    .flatMap((l) => l.addr_info ?? [])
    .map((a) => `${a.local}/${a.prefixlen}`)
    .sort();
}

/** A TCP connection from the host (the test process): what the other side sent until it closed. */
export function hostConnect(host: string, port: number, timeoutMs = 3000): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = new Socket();
    let data = '';
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`${host}:${port}: no answer in ${timeoutMs} ms`));
    }, timeoutMs);
    s.on('data', (d: Buffer) => (data += d.toString()));
    s.on('close', () => {
      clearTimeout(timer);
      resolve(data.trim());
    });
    s.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    s.connect(port, host);
  });
}
