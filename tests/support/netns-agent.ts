/**
 * A helper process that runs INSIDE a network namespace (the e2e tests' fake "internet"):
 *   ip netns exec NS node --import tsx tests/support/netns-agent.ts
 * It is one long-lived process, so the test has exactly one PID to kill and probes from the
 * namespace cost no process start. It speaks JSON lines: a request {id, op, ...} on stdin, one
 * answer {id, ok: true, result} or {id, ok: false, error} on stdout. Operations:
 *   listen  {port}                 a TCP server that answers every connection with the peer's
 *                                  address and a newline, then closes ("who is calling?")
 *   peers   {}                     the peer addresses that server has seen so far
 *   connect {host, port, timeoutMs} one TCP connection; result: the data received until the
 *                                  other side closed (or timeoutMs), and the time to connect
 *   probe   {host, port, expect?, intervalMs, attemptTimeoutMs, deadlineMs}
 *                                  a new connection attempt every intervalMs until one connects
 *                                  (and, with expect, receives exactly that text, trimmed);
 *                                  result: the wall-clock time (epoch ms) of that success
 *   ssh     {host, privateKey, command, timeoutMs}  one command over SSH (as root); its stdout
 * The wall clock is the host's (a namespace shares it), so the test can compare its own
 * Date.now()/performance.timeOrigin-based times with the agent's.
 */
import { createInterface } from 'node:readline';
import { createServer, Socket, type Server } from 'node:net';
import ssh2 from 'ssh2';

interface Request {
  id: number;
  op: string;
  [k: string]: unknown;
}

const now = () => performance.timeOrigin + performance.now();
const servers: Server[] = [];
const peers: string[] = [];

function reply(id: number, body: { ok: true; result: unknown } | { ok: false; error: string }) {
  process.stdout.write(`${JSON.stringify({ id, ...body })}\n`);
}

function listen(port: number): Promise<{ port: number }> {
  return new Promise((resolve, reject) => {
    const server = createServer((sock) => {
      const peer = sock.remoteAddress?.replace(/^::ffff:/, '') ?? 'unknown';
      peers.push(peer);
      sock.on('error', () => {});
      sock.end(`${peer}\n`);
    });
    server.on('error', reject);
    server.listen(port, '0.0.0.0', () => {
      servers.push(server);
      resolve({ port: (server.address() as { port: number }).port });
    });
  });
}

interface ConnectResult {
  connected: boolean;
  /** Epoch ms when the TCP handshake completed (null when it did not). */
  connectedAt: number | null;
  connectMs: number | null;
  data: string;
  error: string | null;
}

/** One connection: resolves (never rejects) with what happened. */
function connectOnce(host: string, port: number, timeoutMs: number): Promise<ConnectResult> {
  return new Promise((resolve) => {
    const t0 = now();
    const sock = new Socket();
    let data = '';
    let connectedAt: number | null = null;
    let done = false;
    const finish = (error: string | null) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({
        connected: connectedAt !== null,
        connectedAt,
        connectMs: connectedAt === null ? null : Math.round((connectedAt - t0) * 100) / 100,
        data,
        error,
      });
    };
    const timer = setTimeout(
      () => finish(connectedAt === null ? `connect timeout after ${timeoutMs} ms` : 'read timeout'),
      timeoutMs,
    );
    sock.on('connect', () => (connectedAt = now()));
    sock.on('data', (d: Buffer) => (data += d.toString()));
    sock.on('end', () => finish(null));
    sock.on('close', () => finish(null));
    sock.on('error', (e: NodeJS.ErrnoException) => finish(e.code ?? e.message));
    sock.connect(port, host);
  });
}

async function probe(r: {
  host: string;
  port: number;
  expect?: string;
  intervalMs?: number;
  attemptTimeoutMs?: number;
  deadlineMs?: number;
}) {
  const interval = r.intervalMs ?? 20;
  const attemptTimeout = r.attemptTimeoutMs ?? 1000;
  const startedAt = now();
  const deadline = startedAt + (r.deadlineMs ?? 30_000);
  let attempts = 0;
  const outcomes = new Map<string, number>();
  return new Promise<{
    startedAt: number;
    succeededAt: number;
    connectedAt: number;
    attempts: number;
    data: string;
    outcomes: Record<string, number>;
  }>((resolve, reject) => {
    let settled = false;
    const tick = () => {
      if (settled) return;
      if (now() > deadline) {
        settled = true;
        clearInterval(timer);
        reject(
          new Error(
            `no connection to ${r.host}:${r.port}${r.expect ? ` answering ${JSON.stringify(r.expect)}` : ''} in ${r.deadlineMs ?? 30_000} ms (${attempts} attempts: ${JSON.stringify(Object.fromEntries(outcomes))})`,
          ),
        );
        return;
      }
      attempts++;
      void connectOnce(r.host, r.port, attemptTimeout).then((c) => {
        const key = c.connected
          ? `connected:${c.data.trim() || '<no data>'}`
          : `failed:${c.error ?? '?'}`;
        outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
        if (settled || !c.connected) return;
        if (r.expect !== undefined && c.data.trim() !== r.expect) return;
        settled = true;
        clearInterval(timer);
        resolve({
          startedAt,
          succeededAt: now(),
          connectedAt: c.connectedAt!,
          attempts,
          data: c.data,
          outcomes: Object.fromEntries(outcomes),
        });
      });
    };
    const timer = setInterval(tick, interval);
    tick();
  });
}

function sshExec(r: {
  host: string;
  privateKey: string;
  command: string;
  timeoutMs?: number;
}): Promise<string> {
  const timeoutMs = r.timeoutMs ?? 20_000;
  return new Promise((resolve, reject) => {
    const conn = new ssh2.Client();
    const timer = setTimeout(() => {
      conn.end();
      reject(new Error(`ssh ${r.host} '${r.command}' timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    conn
      .on('ready', () => {
        conn.exec(r.command, (err, stream) => {
          if (err) {
            clearTimeout(timer);
            conn.end();
            return reject(err);
          }
          let out = '';
          let errOut = '';
          stream.on('data', (d: Buffer) => (out += d.toString()));
          stream.stderr.on('data', (d: Buffer) => (errOut += d.toString()));
          stream.on('close', (code: number) => {
            clearTimeout(timer);
            conn.end();
            if (code === 0) resolve(out);
            else reject(new Error(`ssh ${r.host} '${r.command}' exited ${code}: ${errOut}`));
          });
        });
      })
      .on('error', (e) => {
        clearTimeout(timer);
        reject(e);
      })
      .connect({
        host: r.host,
        port: 22,
        username: 'root',
        privateKey: r.privateKey,
        readyTimeout: timeoutMs,
        hostVerifier: () => true,
      });
  });
}

async function handle(req: Request): Promise<unknown> {
  const a = req as any;
  switch (req.op) {
    case 'listen':
      return listen(Number(a.port ?? 0));
    case 'peers':
      return [...peers];
    case 'connect':
      return connectOnce(String(a.host), Number(a.port), Number(a.timeoutMs ?? 3000));
    case 'probe':
      return probe(a);
    case 'ssh':
      return sshExec(a);
    default:
      throw new Error(`unknown op ${JSON.stringify(req.op)}`);
  }
}

const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  let req: Request;
  try {
    req = JSON.parse(line) as Request;
  } catch {
    return;
  }
  handle(req).then(
    (result) => reply(req.id, { ok: true, result }),
    (e: unknown) => reply(req.id, { ok: false, error: (e as Error)?.message ?? String(e) }),
  );
});
// The test closes stdin (or dies): leave at once, whatever is pending.
rl.on('close', () => {
  for (const s of servers) s.close();
  process.exit(0);
});
process.stdout.write(`${JSON.stringify({ ready: true, pid: process.pid })}\n`);
