/**
 * LibvirtHypervisor against a libvirtd that stops answering. The shared libvirtd is never
 * stopped: the hypervisor talks to it through a UNIX-socket proxy made here
 * (qemu+unix:///system?socket=...), which forwards bytes until the test "wedges" it; then it
 * holds what the client sends (as a SIGSTOPped daemon would) until `release()` delivers it, or
 * `cut()` closes every socket (as a restarted daemon would).
 *
 * Needs: root, libvirtd running with /run/libvirt/libvirt-sock.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { lookup } from 'node:dns/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jest } from '@jest/globals';
import { HypervisorError, LibvirtHypervisor, type DomainSpec } from '../src/index.js';
import { sampleSpec } from './fixtures.js';

jest.setTimeout(120_000);

const LIBVIRT_SOCK = '/run/libvirt/libvirt-sock';
const prefix = `mth${randomUUID().replace(/-/g, '').slice(0, 3)}-`;

/** A proxy to libvirtd that can stop answering. */
class WedgeableProxy {
  private readonly sockets = new Set<net.Socket>();
  private held: { to: net.Socket; data: Buffer }[] = [];
  private wedged = false;
  private server: net.Server | null = null;

  constructor(readonly path: string) {}

  async start(): Promise<void> {
    this.server = net.createServer((client) => {
      const daemon = net.connect(LIBVIRT_SOCK);
      for (const s of [client, daemon]) {
        this.sockets.add(s);
        s.on('error', () => undefined);
        s.on('close', () => this.sockets.delete(s));
      }
      client.on('close', () => daemon.destroy());
      daemon.on('close', () => client.destroy());
      client.on('data', (d) => this.forward(daemon, d));
      daemon.on('data', (d) => client.write(d));
    });
    await new Promise<void>((resolve) => this.server!.listen(this.path, resolve));
  }

  private forward(to: net.Socket, data: Buffer): void {
    if (this.wedged) this.held.push({ to, data });
    else to.write(data);
  }

  /** From now on, requests reach nobody (connections stay open). */
  wedge(): void {
    this.wedged = true;
  }

  /** Deliver what was held and forward again: the daemon "wakes up". */
  release(): void {
    this.wedged = false;
    for (const { to, data } of this.held) to.write(data);
    this.held = [];
  }

  /** Close every connection (the daemon "restarted"); new ones are forwarded. */
  cut(): void {
    this.wedged = false;
    this.held = [];
    for (const s of this.sockets) s.destroy();
  }

  async stop(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) =>
      this.server ? this.server.close(() => resolve()) : resolve(),
    );
  }
}

async function failure(p: Promise<unknown>): Promise<{ error: HypervisorError; ms: number }> {
  const t0 = Date.now();
  try {
    await p;
  } catch (e) {
    return { error: e as HypervisorError, ms: Date.now() - t0 };
  }
  throw new Error('expected the call to fail');
}

/** A promise that resolves when `cond` holds (polled), or rejects after `ms`. */
async function eventually(cond: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('LibvirtHypervisor when libvirtd stops answering', () => {
  const TIMEOUT = 1_500;
  let dir = '';
  let proxy: WedgeableProxy;
  let stuckHv: LibvirtHypervisor;
  const healthy = new LibvirtHypervisor({ uri: 'qemu:///system' });
  const logged: string[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'minicloud-test-stuck-'));
    proxy = new WedgeableProxy(join(dir, 'libvirt.sock'));
    await proxy.start();
    stuckHv = new LibvirtHypervisor({
      uri: `qemu+unix:///system?socket=${proxy.path}`,
      callTimeoutMs: TIMEOUT,
      log: (m) => logged.push(m),
    });
  });

  afterAll(async () => {
    // Every stuck native call ends when its socket closes: nothing waits after the suite.
    await proxy?.stop();
    await eventually(() => stuckHv.callsInFlight === 0).catch(() => undefined);
    for (const d of await healthy.listDomains(prefix)) await healthy.undefine(d.name);
    expect(await healthy.listDomains(prefix)).toEqual([]);
    await stuckHv?.close();
    await healthy.close();
    await rm(dir, { recursive: true, force: true });
  });

  beforeEach(() => {
    proxy.cut();
    logged.length = 0;
  });

  it('fails a stuck call within its deadline, naming the call, the domain and the URI', async () => {
    expect(await stuckHv.getState(`${prefix}none`)).toBeNull(); // through the proxy, healthy
    proxy.wedge();
    const { error, ms } = await failure(stuckHv.getState(`${prefix}none`));
    expect(error).toBeInstanceOf(HypervisorError);
    expect(error.code).toBe('LibvirtTimeout');
    expect(error.message).toContain(`get state of ${prefix}none`);
    expect(error.message).toContain(proxy.path);
    expect(ms).toBeGreaterThanOrEqual(TIMEOUT - 50);
    expect(ms).toBeLessThan(TIMEOUT + 10_000);
    expect(logged.join('\n')).toContain(`get state of ${prefix}none`);

    // A call on a healthy connection in the same process still works.
    expect(await healthy.getState(`${prefix}none`)).toBeNull();

    // libvirtd "restarts": the stuck call ends, and the same hypervisor works again.
    proxy.cut();
    await eventually(() => stuckHv.callsInFlight === 0);
    expect(await stuckHv.getState(`${prefix}none`)).toBeNull();
  });

  it('a wedged libvirtd holds at most 2 threads: file reads and other calls go on', async () => {
    expect(await stuckHv.listDomains(prefix)).toEqual([]);
    proxy.wedge();
    // Eight concurrent operations: without the gate they would take all 4 threads of libuv's
    // pool, and the file read below would wait for libvirtd.
    const calls = Array.from({ length: 8 }, (_, i) => failure(stuckHv.getState(`${prefix}n${i}`)));
    await eventually(() => stuckHv.callsInFlight === 2, 5_000);
    const readStarted = Date.now();
    await readFile('/proc/self/status');
    await lookup('localhost');
    const readMs = Date.now() - readStarted;
    expect(readMs).toBeLessThan(TIMEOUT);
    for (const { error, ms } of await Promise.all(calls)) {
      expect(error.code).toBe('LibvirtTimeout');
      expect(ms).toBeLessThan(TIMEOUT + 10_000);
    }
    expect(stuckHv.callsInFlight).toBe(2); // still inside libvirt, bounded
    // A later call to the wedged libvirtd fails at its deadline instead of queueing for ever.
    const later = await failure(stuckHv.getState(`${prefix}later`));
    expect(later.error.code).toBe('LibvirtTimeout');
    expect(await healthy.listDomains(prefix)).toEqual([]);
    proxy.cut();
    await eventually(() => stuckHv.callsInFlight === 0);
    expect(await stuckHv.listDomains(prefix)).toEqual([]);
  });

  it('fails when libvirtd accepts the connection but never answers the open', async () => {
    await stuckHv.close();
    proxy.wedge();
    const { error, ms } = await failure(stuckHv.getState(`${prefix}none`));
    expect(error.code).toBe('LibvirtTimeout');
    expect(error.message).toContain(proxy.path);
    expect(ms).toBeLessThan(TIMEOUT + 10_000);
    proxy.cut();
    await eventually(() => stuckHv.callsInFlight === 0);
    expect(await stuckHv.getState(`${prefix}none`)).toBeNull();
  });

  it('an operation given up at its deadline does not go on when libvirtd wakes up', async () => {
    const spec: DomainSpec = sampleSpec({
      name: `${prefix}late`,
      uuid: randomUUID(),
      virtType: 'qemu',
      consoleLogPath: join(dir, 'late.log'),
    });
    expect(await stuckHv.getState(spec.name)).toBeNull();
    proxy.wedge();
    // Stuck in the lookup; define and start would follow.
    const { error } = await failure(stuckHv.ensureDefined(spec));
    expect(error.code).toBe('LibvirtTimeout');
    expect(error.message).toContain(`define ${spec.name}`);
    proxy.release(); // the lookup is answered now, after the caller was told it failed
    await eventually(() => stuckHv.callsInFlight === 0);
    await new Promise((r) => setTimeout(r, 300));
    expect(await healthy.getState(spec.name)).toBeNull(); // never defined
    // The connection the stuck call used was dropped and closed; a new one works.
    expect(logged.join('\n')).toContain('connection dropped');
    expect(await stuckHv.getState(spec.name)).toBeNull();
  });
});
