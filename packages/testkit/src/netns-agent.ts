/**
 * A helper process that runs INSIDE a network namespace (the e2e tests' fake "internet"):
 *   ip netns exec NS node --import tsx packages/testkit/src/netns-agent.ts
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
import {
  execOn,
  sshConnect,
  sshOutput,
  stdoutOf,
  type SshClient,
  withTimeout,
  type SshTarget,
} from './ssh.js';
import type {
  ConnectResult,
  PingProbeRequest,
  PingProbeResult,
  PingRequest,
  PingResult,
  ProbeRequest,
  ProbeResult,
} from './netns-protocol.js';

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

async function probe(r: ProbeRequest): Promise<ProbeResult> {
  const interval = r.intervalMs ?? 20;
  const attemptTimeout = r.attemptTimeoutMs ?? 1000;
  const startedAt = now();
  const deadline = startedAt + (r.deadlineMs ?? 30_000);
  let attempts = 0;
  const outcomes = new Map<string, number>();
  return new Promise((resolve, reject) => {
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

interface Session {
  conn: SshClient;
  host: string;
  /** Why the connection ended (null while it is open). */
  closed: string | null;
}
const sessions = new Map<number, Session>();
let nextSession = 1;

async function sshOpen(r: SshTarget & { timeoutMs?: number }): Promise<{ session: number }> {
  const conn = await sshConnect(r, r.timeoutMs ?? 20_000);
  const id = nextSession++;
  const session: Session = { conn, host: r.host, closed: null };
  sessions.set(id, session);
  conn.on('close', () => (session.closed ??= 'connection closed'));
  conn.on('error', (e) => (session.closed ??= e.message));
  return { session: id };
}

/** One command on an open session: its stdout (rejects on a non-zero exit). */
async function sshRunOn(id: number, command: string, timeoutMs: number): Promise<string> {
  const s = sessionOf(id);
  const r = await withTimeout(
    execOn(s.conn, command),
    timeoutMs,
    () => new Error(`ssh ${s.host} '${command}' timed out after ${timeoutMs} ms`),
  );
  return stdoutOf(s.host, command, r);
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

function ping(r: PingRequest): Promise<PingResult> {
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

function pingProbe(r: PingProbeRequest): Promise<PingProbeResult> {
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
      return sshOutput(a, String(a.command), Number(a.timeoutMs ?? 20_000));
    case 'ping':
      return ping(a);
    case 'pingProbe':
      return pingProbe(a);
    case 'sshOpen':
      return sshOpen(a);
    case 'sshRun':
      return sshRunOn(Number(a.session), String(a.command), Number(a.timeoutMs ?? 20_000));
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
