/** run() against real commands (coreutils, sh): what callers see, whichever thread spawns. */
import { mkdtemp, realpath, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HostCommandError, run } from '../src/index.js';

describe('run', () => {
  it('returns stdout and stderr of a successful command', async () => {
    expect(await run('sh', ['-c', 'echo out; echo err >&2'])).toEqual({
      stdout: 'out\n',
      stderr: 'err\n',
      exitCode: 0,
    });
  });

  it('passes argv without a shell, and input on stdin (string or Buffer)', async () => {
    expect((await run('echo', ['a b', '$HOME', ';', '*'])).stdout).toBe('a b $HOME ; *\n');
    expect((await run('cat', [], { input: 'hello\n' })).stdout).toBe('hello\n');
    expect((await run('wc', ['-c'], { input: Buffer.alloc(70_000, 1) })).stdout.trim()).toBe(
      '70000',
    );
  });

  it('fails with the exit code and stderr, unless the code is allowed', async () => {
    const e = await run('sh', ['-c', 'echo nope >&2; exit 3']).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(HostCommandError);
    expect(e).toMatchObject({
      command: 'sh',
      args: ['-c', 'echo nope >&2; exit 3'],
      exitCode: 3,
      stderr: 'nope\n',
      timedOut: false,
    });
    expect((e as Error).message).toMatch(/exited with 3: nope/);
    expect(await run('sh', ['-c', 'echo x; exit 1'], { okExitCodes: [1] })).toEqual({
      stdout: 'x\n',
      stderr: '',
      exitCode: 1,
    });
  });

  it('kills a command at its timeout', async () => {
    const t0 = Date.now();
    const e = await run('sleep', ['10'], { timeoutMs: 200 }).catch((x: unknown) => x);
    expect(e).toMatchObject({ exitCode: null, timedOut: true });
    expect(Date.now() - t0).toBeLessThan(5_000);
  });

  it('reports a missing command by its errno', async () => {
    const e = await run('minicloud-no-such-command', []).catch((x: unknown) => x);
    expect(e).toMatchObject({ exitCode: null, timedOut: false });
    expect((e as HostCommandError).stderr).toMatch(/^ENOENT/);
  });

  it('runs in cwd, with env when given and with the current environment otherwise', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'minicloud-test-run-'));
    try {
      expect((await run('pwd', [], { cwd: dir })).stdout.trim()).toBe(await realpath(dir));
      expect(
        (await run('sh', ['-c', 'echo $MC_X'], { env: { PATH: '/usr/bin:/bin', MC_X: 'y' } }))
          .stdout,
      ).toBe('y\n');
      process.env.MINICLOUD_TEST_RUN_ENV = 'now';
      expect((await run('sh', ['-c', 'echo $MINICLOUD_TEST_RUN_ENV'])).stdout).toBe('now\n');
    } finally {
      delete process.env.MINICLOUD_TEST_RUN_ENV;
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('never keeps a finished process alive (idle spawn threads are unref-ed)', async () => {
    const index = fileURLToPath(new URL('../src/index.ts', import.meta.url));
    const script = `import { run } from ${JSON.stringify(index)}; await run('true', []); console.log('ran');`;
    const r = await run(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', script],
      {
        timeoutMs: 30_000,
      },
    );
    expect(r.stdout).toBe('ran\n');
  });

  it('refuses a command name that is not a plain path', () => {
    expect(() => run('ls; rm', [])).toThrow(/refusing/);
  });

  it('runs many commands at once; reports the longest event loop stall meanwhile', async () => {
    // Starting a process blocks the thread that starts it until the child has exec'd: here that
    // is a spawn thread, so the main thread's timers keep firing.
    let last = performance.now();
    let longest = 0;
    const timer = setInterval(() => {
      const now = performance.now();
      longest = Math.max(longest, now - last);
      last = now;
    }, 1);
    const t0 = performance.now();
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) => run('echo', [String(i)])),
    );
    const wall = performance.now() - t0;
    clearInterval(timer);
    longest = Math.max(longest, performance.now() - last);
    expect(results.map((r) => r.stdout)).toEqual(Array.from({ length: 40 }, (_, i) => `${i}\n`));
    console.log(
      `40 concurrent commands in ${wall.toFixed(0)} ms; longest event loop stall ${longest.toFixed(1)} ms`,
    );
  });
});
