/**
 * A helper process that runs INSIDE a network namespace (the e2e tests' fake "internet"):
 *   ip netns exec NS node --import tsx tests/support/netns-agent.ts
 * It is one long-lived process, so the test has exactly one PID to kill and probes from the
 * namespace cost no process start. It speaks JSON lines: a request {id, op, ...} on stdin, one
 * answer {id, ok: true, result} or {id, ok: false, error} on stdout. Operations:
 *   listen  {port}                 a TCP server that answers every connection with the peer's
 *                                  address and a newline, then closes ("who is calling?")
 *   peers   {port?}                the peer addresses the listen() servers (or the one on port)
 *                                  have seen so far
 *   connect {host, port, timeoutMs, localAddress?} one TCP connection; result: the data
 *                                  received until the other side closed (or timeoutMs), and the
 *                                  time to connect
 *   probe   {host, port, expect?, intervalMs, attemptTimeoutMs, deadlineMs, localAddress?}
 *                                  a new connection attempt every intervalMs until one connects
 *                                  (and, with expect, receives exactly that text, trimmed);
 *                                  result: the wall-clock time (epoch ms) of that success
 *   ssh     {host, privateKey, command, timeoutMs, localAddress?}  one command over SSH (as
 *                                  root); its stdout
 *   ping    {host, count, timeoutMs, localAddress?}  busybox ping; result: transmitted,
 *                                  received and the output (no reply is a result, not an error)
 *   pingProbe {host, intervalMs, deadlineMs, localAddress?}  one ping process sending every
 *                                  intervalMs until the first reply; result: the wall-clock
 *                                  time of that reply's arrival
 *   sshOpen {host, privateKey, timeoutMs, localAddress?}  an SSH connection kept open; result:
 *                                  {session}. sshRun {session, command, timeoutMs}: one command
 *                                  on it (stdout). sshClose {session}.
 * `localAddress` picks the client's source address (one of the namespace's addresses).
 * Child processes (ping) are killed when the agent ends.
 * The wall clock is the host's (a namespace shares it), so the test can compare its own
 * Date.now()/performance.timeOrigin-based times with the agent's.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { createServer, Socket, type Server } from 'node:net';
import ssh2, { type Client as SshClient } from 'ssh2';

interface Request {
  id: number;
  op: string;
  [k: string]: unknown;
}

const now = () => performance.timeOrigin + performance.now();
const servers: Server[] = [];
const peers: { port: number; peer: string }[] = [];
const children = new Set<ChildProcess>();

function reply(id: number, body: { ok: true; result: unknown } | { ok: false; error: string }) {
  process.stdout.write(`${JSON.stringify({ id, ...body })}\n`);
}

function listen(port: number): Promise<{ port: number }> {
  return new Promise((resolve, reject) => {
    const server = createServer((sock) => {
      const peer = sock.remoteAddress?.replace(/^::ffff:/, '') ?? 'unknown';
      peers.push({ port: sock.localPort ?? port, peer });
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
function connectOnce(
  host: string,
  port: number,
  timeoutMs: number,
  localAddress?: string,
): Promise<ConnectResult> {
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
    sock.connect({ port, host, ...(localAddress ? { localAddress } : {}) });
  });
}

async function probe(r: {
  host: string;
  port: number;
  expect?: string;
  intervalMs?: number;
  attemptTimeoutMs?: number;
  deadlineMs?: number;
  localAddress?: string;
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
      void connectOnce(r.host, r.port, attemptTimeout, r.localAddress).then((c) => {
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
  localAddress?: string;
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
        ...(r.localAddress ? { localAddress: r.localAddress } : {}),
      });
  });
}

/** Run one command on an open SSH connection: its stdout (rejects on a non-zero exit). */
function execOn(conn: SshClient, what: string, command: string, timeoutMs: number) {
  return new Promise<string>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${what} '${command}' timed out after ${timeoutMs} ms`)),
      timeoutMs,
    );
    conn.exec(command, (err, stream) => {
      if (err) {
        clearTimeout(timer);
        return reject(err);
      }
      let out = '';
      let errOut = '';
      stream.on('data', (d: Buffer) => (out += d.toString()));
      stream.stderr.on('data', (d: Buffer) => (errOut += d.toString()));
      stream.on('close', (code: number) => {
        clearTimeout(timer);
        if (code === 0) resolve(out);
        else reject(new Error(`${what} '${command}' exited ${code}: ${errOut}`));
      });
    });
  });
}

interface Session {
  conn: SshClient;
  host: string;
  /** Why the connection ended (null while it is open). */
  closed: string | null;
}
const sessions = new Map<number, Session>();
let nextSession = 1;

function sshOpen(r: {
  host: string;
  privateKey: string;
  timeoutMs?: number;
  localAddress?: string;
}): Promise<{ session: number }> {
  const timeoutMs = r.timeoutMs ?? 20_000;
  return new Promise((resolve, reject) => {
    const conn = new ssh2.Client();
    let ready = false;
    const timer = setTimeout(() => {
      conn.end();
      reject(new Error(`ssh ${r.host}: no session in ${timeoutMs} ms`));
    }, timeoutMs);
    conn
      .on('ready', () => {
        ready = true;
        clearTimeout(timer);
        const id = nextSession++;
        const session: Session = { conn, host: r.host, closed: null };
        sessions.set(id, session);
        conn.on('close', () => (session.closed ??= 'connection closed'));
        resolve({ session: id });
      })
      .on('error', (e) => {
        if (!ready) {
          clearTimeout(timer);
          reject(e);
        }
        for (const s of sessions.values()) if (s.conn === conn) s.closed ??= e.message;
      })
      .connect({
        host: r.host,
        port: 22,
        username: 'root',
        privateKey: r.privateKey,
        readyTimeout: timeoutMs,
        hostVerifier: () => true,
        ...(r.localAddress ? { localAddress: r.localAddress } : {}),
      });
  });
}

function sessionOf(id: number): Session {
  const s = sessions.get(id);
  if (!s) throw new Error(`no SSH session ${id}`);
  if (s.closed) throw new Error(`SSH session ${id} to ${s.host} ended: ${s.closed}`);
  return s;
}

/** busybox ping (in the namespace; the host has no other ping). */
function spawnPing(args: string[]): ChildProcess {
  const child = spawn('busybox', ['ping', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  child.on('exit', () => children.delete(child));
  child.on('error', () => children.delete(child));
  return child;
}

function ping(r: {
  host: string;
  count?: number;
  timeoutMs?: number;
  localAddress?: string;
}): Promise<{ transmitted: number; received: number; output: string }> {
  const count = r.count ?? 2;
  const seconds = Math.max(1, Math.ceil((r.timeoutMs ?? 3000) / 1000));
  return new Promise((resolve, reject) => {
    const child = spawnPing([
      '-c',
      String(count),
      '-W',
      String(seconds),
      '-w',
      String(seconds + count),
      ...(r.localAddress ? ['-I', r.localAddress] : []),
      r.host,
    ]);
    let output = '';
    child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', reject);
    child.on('close', () => {
      const m = /(\d+) packets transmitted, (\d+) packets received/.exec(output);
      resolve({
        transmitted: m ? Number(m[1]) : 0,
        received: m ? Number(m[2]) : 0,
        output,
      });
    });
  });
}

function pingProbe(r: {
  host: string;
  intervalMs?: number;
  deadlineMs?: number;
  localAddress?: string;
}): Promise<{ startedAt: number; firstReplyAt: number; output: string }> {
  const deadlineMs = r.deadlineMs ?? 30_000;
  return new Promise((resolve, reject) => {
    const startedAt = now();
    const child = spawnPing([
      '-i',
      String((r.intervalMs ?? 50) / 1000),
      '-w',
      String(Math.ceil(deadlineMs / 1000)),
      ...(r.localAddress ? ['-I', r.localAddress] : []),
      r.host,
    ]);
    let output = '';
    let done = false;
    createInterface({ input: child.stdout! }).on('line', (line) => {
      output += `${line}\n`;
      if (done || !/bytes from/.test(line)) return;
      done = true;
      resolve({ startedAt, firstReplyAt: now(), output });
      child.kill('SIGKILL');
    });
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', (e) => {
      if (!done) reject(e);
      done = true;
    });
    child.on('close', () => {
      if (done) return;
      done = true;
      reject(new Error(`no ping reply from ${r.host} in ${deadlineMs} ms: ${output.trim()}`));
    });
  });
}

async function handle(req: Request): Promise<unknown> {
  const a = req as any;
  switch (req.op) {
    case 'listen':
      return listen(Number(a.port ?? 0));
    case 'peers':
      return peers.filter((p) => a.port === undefined || p.port === a.port).map((p) => p.peer);
    case 'connect':
      return connectOnce(
        String(a.host),
        Number(a.port),
        Number(a.timeoutMs ?? 3000),
        a.localAddress === undefined ? undefined : String(a.localAddress),
      );
    case 'probe':
      return probe(a);
    case 'ssh':
      return sshExec(a);
    case 'ping':
      return ping(a);
    case 'pingProbe':
      return pingProbe(a);
    case 'sshOpen':
      return sshOpen(a);
    case 'sshRun': {
      const s = sessionOf(Number(a.session));
      return execOn(s.conn, `ssh ${s.host}`, String(a.command), Number(a.timeoutMs ?? 20_000));
    }
    case 'sshClose': {
      const s = sessions.get(Number(a.session));
      sessions.delete(Number(a.session));
      s?.conn.end();
      return { closed: Boolean(s) };
    }
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
  for (const s of sessions.values()) s.conn.end();
  for (const c of children) c.kill('SIGKILL');
  process.exit(0);
});
process.stdout.write(`${JSON.stringify({ ready: true, pid: process.pid })}\n`);
