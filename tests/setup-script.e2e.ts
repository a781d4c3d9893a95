/**
 * scripts/setup.sh, run again and again as README says it may be: it finishes while the daemons
 * run, and no daemon it starts keeps its lock (/run/minicloud-setup.lock, fd 9): a daemon that
 * inherited it would make every later setup (run.sh, test.sh) wait forever without a word.
 *
 * The shared daemons are never restarted: on this machine they already run, so setup.sh starts
 * none. The second test makes setup.sh start stand-ins instead (redis-server, virtlogd and
 * libvirtd found first on PATH, each leaving a `sleep` behind as a daemon does), which inherit
 * whatever the script leaves open for them; the test stops them by PID.
 */
import { chmod, mkdtemp, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '@minicloud/host';
import { REPO_ROOT } from '@minicloud/testkit/paths';

const LOCK = '/run/minicloud-setup.lock';
const SETUP_TIMEOUT_MS = 300_000;

const cmdlineOf = async (pid: string) =>
  (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0').join(' ').trim();

/** True when the process is a set-up script running (another test's, a run.sh) or its child. */
async function insideASetup(pid: string): Promise<boolean> {
  for (let p = pid; p !== '0' && p !== '1';) {
    if (/\bscripts\/setup\.sh\b/.test(await cmdlineOf(p))) return true;
    const stat = await readFile(`/proc/${p}/stat`, 'utf8').catch(() => '');
    p = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1] ?? '0'; // ppid
  }
  return false;
}

/** `pid command` of every process with the set-up lock open, a set-up running left out. */
async function lockHolders(): Promise<string[]> {
  const holders: string[] = [];
  for (const pid of (await readdir('/proc')).filter((n) => /^\d+$/.test(n))) {
    const fds = await readdir(`/proc/${pid}/fd`).catch(() => [] as string[]);
    for (const fd of fds) {
      if ((await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '')) !== LOCK) continue;
      if (!(await insideASetup(pid))) holders.push(`${pid} ${await cmdlineOf(pid)}`);
      break;
    }
  }
  return holders;
}

const setup = (env: NodeJS.ProcessEnv = process.env) =>
  run('bash', ['scripts/setup.sh'], { cwd: REPO_ROOT, env, timeoutMs: SETUP_TIMEOUT_MS });

describe('scripts/setup.sh', () => {
  it(
    'finishes when run twice while the daemons run, and leaves no process holding its lock',
    async () => {
      await setup();
      await setup();
      expect(await lockHolders()).toEqual([]);
    },
    2 * SETUP_TIMEOUT_MS + 10_000,
  );

  it(
    'closes its lock for the daemons it starts',
    async () => {
      const dir = await mkdtemp(join(tmpdir(), 'minicloud-test-setup-'));
      const pids = join(dir, 'pids');
      // A stand-in daemon: a `sleep` in the background, its stdio detached, every other open
      // file descriptor inherited (as redis-server --daemonize, virtlogd -d and libvirtd do).
      const daemon = (name: string) =>
        `#!/bin/bash\nsleep 600 </dev/null >/dev/null 2>&1 &\necho "$! ${name}" >> ${pids}\n`;
      const shims: Record<string, string> = {
        // "not running": so setup.sh starts the stand-ins below
        pgrep: `#!/bin/bash\ncase "$*" in "-x virtlogd"|"-x libvirtd") exit 1;; esac\nexec /usr/bin/pgrep "$@"\n`,
        'redis-cli': `#!/bin/bash\ngrep -q redis-server ${pids} 2>/dev/null || exit 1\nexec /usr/bin/redis-cli "$@"\n`,
        'redis-server': daemon('redis-server'),
        virtlogd: daemon('virtlogd'),
        // started in the background under tini: stays in the foreground, as libvirtd does
        libvirtd: `${daemon('libvirtd')}wait\n`,
      };
      for (const [name, body] of Object.entries(shims)) {
        await writeFile(join(dir, name), body);
        await chmod(join(dir, name), 0o755);
      }
      try {
        await setup({ ...process.env, PATH: `${dir}:${process.env.PATH ?? '/usr/bin:/bin'}` });
        const started = (await readFile(pids, 'utf8')).trim().split('\n');
        expect(started.map((l) => l.split(' ')[1]).sort()).toEqual([
          'libvirtd',
          'redis-server',
          'virtlogd',
        ]);
        expect(await lockHolders()).toEqual([]);
        // And so the next setup does not wait for them.
        await setup();
      } finally {
        const started = await readFile(pids, 'utf8').catch(() => '');
        for (const line of started.trim().split('\n').filter(Boolean)) {
          try {
            process.kill(Number(line.split(' ')[0]), 'SIGKILL');
          } catch {
            /* gone already */
          }
        }
        await rm(dir, { recursive: true, force: true });
      }
    },
    2 * SETUP_TIMEOUT_MS + 10_000,
  );
});
