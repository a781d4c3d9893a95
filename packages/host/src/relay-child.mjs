// The command relay's child: a small Node process that starts host commands for a big one.
// Forking a process copies its page tables, and Node forks on the event loop: from a worker with
// a large heap each fork stalls every request for milliseconds. This process stays small, so its
// forks are cheap; the parent talks to it with one JSON line per request and per reply.
// Plain JavaScript on purpose: it starts with `node` alone, without the TypeScript loader.
import { Buffer } from 'node:buffer';
import { execFile } from 'node:child_process';
import process from 'node:process';
import { createInterface } from 'node:readline';

const SAFE_COMMAND = /^[A-Za-z0-9_./-]+$/;

function reply(message) {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

function start(request) {
  const { id, command, args, timeoutMs, input, env, cwd } = request;
  if (typeof command !== 'string' || !SAFE_COMMAND.test(command) || !Array.isArray(args)) {
    reply({ id, stdout: '', stderr: 'refused: malformed request', error: { code: 'EINVAL' } });
    return;
  }
  const child = execFile(
    command,
    args,
    {
      timeout: timeoutMs,
      killSignal: 'SIGKILL',
      maxBuffer: 64 * 1024 * 1024,
      env: env ?? process.env,
      cwd: cwd ?? undefined,
      encoding: 'utf8',
    },
    (error, stdout, stderr) => {
      reply({
        id,
        stdout,
        stderr,
        error: error ? { code: error.code ?? null, killed: error.killed === true } : null,
      });
    },
  );
  if (typeof input === 'string') child.stdin?.end(Buffer.from(input, 'base64'));
}

// When the parent goes away its end of stdin closes: finish what runs, then exit.
createInterface({ input: process.stdin }).on('line', (line) => {
  try {
    start(JSON.parse(line));
  } catch (e) {
    process.stderr.write(`minicloud command relay: bad request: ${e}\n`);
  }
});
