import { performance } from 'node:perf_hooks';
import { HostCommandError, run, stopCommandRelay } from '@minicloud/host';

afterAll(() => stopCommandRelay());

/** run() through the relay child and directly must behave the same. */
describe.each([
  ['through the relay', undefined],
  ['directly (MINICLOUD_HOST_RELAY=off)', 'off'],
])('run %s', (_label, relaySetting) => {
  const saved = process.env.MINICLOUD_HOST_RELAY;
  beforeAll(() => {
    if (relaySetting) process.env.MINICLOUD_HOST_RELAY = relaySetting;
  });
  afterAll(() => {
    if (saved === undefined) delete process.env.MINICLOUD_HOST_RELAY;
    else process.env.MINICLOUD_HOST_RELAY = saved;
  });

  test('returns stdout, stderr and the exit code', async () => {
    await expect(run('sh', ['-c', 'echo out; echo err >&2'])).resolves.toEqual({
      stdout: 'out\n',
      stderr: 'err\n',
      exitCode: 0,
    });
  });

  test('passes arguments verbatim, never through a shell', async () => {
    const args = ['$(id)', 'a b', '"q"', ';', 'ünï'];
    const r = await run('printf', ['%s|', ...args]);
    expect(r.stdout).toBe(args.map((a) => `${a}|`).join(''));
  });

  test('writes input to standard input, strings and bytes', async () => {
    expect((await run('cat', [], { input: 'abc\n' })).stdout).toBe('abc\n');
    expect((await run('od', ['-An', '-tx1'], { input: Buffer.from([0, 255]) })).stdout.trim()).toBe(
      '00 ff',
    );
  });

  test('a failing command rejects with its exit code and stderr', async () => {
    const e = await run('sh', ['-c', 'echo broken >&2; exit 7']).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(HostCommandError);
    expect(e).toMatchObject({ exitCode: 7, timedOut: false, command: 'sh' });
    expect((e as Error).message).toContain('broken');
  });

  test('okExitCodes count as success', async () => {
    await expect(run('sh', ['-c', 'exit 3'], { okExitCodes: [3] })).resolves.toMatchObject({
      exitCode: 3,
    });
  });

  test('a missing command names the errno', async () => {
    const e = await run('minicloud-no-such-command', []).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(HostCommandError);
    expect((e as Error).message).toContain('ENOENT');
  });

  test('a command past its timeout is killed and reported as timed out', async () => {
    const t0 = performance.now();
    const e = await run('sleep', ['20'], { timeoutMs: 300 }).catch((x: unknown) => x);
    expect(e).toMatchObject({ timedOut: true, exitCode: null });
    expect(performance.now() - t0).toBeLessThan(10_000);
  });

  test("env and cwd are the caller's", async () => {
    const r = await run('sh', ['-c', 'echo "$MC_X:$(pwd)"'], {
      env: { PATH: process.env.PATH, MC_X: 'y' },
      cwd: '/tmp',
    });
    expect(r.stdout).toBe('y:/tmp\n');
  });

  test('many commands at once each get their own answer', async () => {
    const outs = await Promise.all(
      Array.from({ length: 40 }, (_, i) => run('echo', [String(i)]).then((r) => r.stdout)),
    );
    expect(outs).toEqual(Array.from({ length: 40 }, (_, i) => `${i}\n`));
  });

  test('a name that is not a plain command is refused before anything runs', async () => {
    await expect(run('sh -c id', [])).rejects.toThrow(/refusing/);
    await expect(run('../x;y', [])).rejects.toThrow(/refusing/);
  });
});

describe('the relay child', () => {
  test('when it dies, its running commands fail and the next command starts a new one', async () => {
    const running = run('sleep', ['20']).catch((x: unknown) => x);
    await new Promise((r) => setTimeout(r, 200));
    stopCommandRelay();
    const e = await running;
    expect(e).toBeInstanceOf(HostCommandError);
    expect((e as Error).message).toMatch(/relay exited/);
    await expect(run('echo', ['again'])).resolves.toMatchObject({ stdout: 'again\n' });
  });
});
