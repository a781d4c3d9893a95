import { mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from '@minicloud/host';
import { ensureAdminKey } from '../src/admin-key.js';

const CHILD = fileURLToPath(new URL('./fixtures/ensure-admin-key.ts', import.meta.url));

describe('the admin key on first start', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'minicloud-test-admin-key-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('is generated once (0600), then read back; the environment wins', async () => {
    const file = join(dir, 'data', 'admin-key');
    const first = await ensureAdminKey(undefined, file);
    expect(first.source).toBe('generated');
    expect(first.key).toMatch(/^mck_[A-Za-z0-9_-]{32}$/);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(await ensureAdminKey(undefined, file)).toEqual({ key: first.key, source: 'file' });
    expect(await ensureAdminKey('from-env', file)).toEqual({
      key: 'from-env',
      source: 'environment',
    });
  });

  it('is the same key for every concurrent caller, and the one stored', async () => {
    const file = join(dir, 'admin-key');
    const answers = await Promise.all(
      Array.from({ length: 12 }, () => ensureAdminKey(undefined, file)),
    );
    const keys = new Set(answers.map((a) => a.key));
    expect(keys).toEqual(new Set([(await readFile(file, 'utf8')).trim()]));
    expect(answers.filter((a) => a.source === 'generated')).toHaveLength(1);
    expect(await readdir(dir)).toEqual(['admin-key']);
  });

  it('is the same key for processes started together (api and worker roles)', async () => {
    const file = join(dir, 'admin-key');
    // Every child waits for the same moment, so their first starts really overlap.
    const at = String(Date.now() + 4_000);
    const children = await Promise.all(
      Array.from({ length: 4 }, async () => {
        const r = await run(process.execPath, ['--import', 'tsx', CHILD, file, at], {
          timeoutMs: 120_000,
        });
        return JSON.parse(r.stdout) as { key: string; source: string };
      }),
    );
    expect(new Set(children.map((c) => c.key))).toEqual(
      new Set([(await readFile(file, 'utf8')).trim()]),
    );
    expect(children.filter((c) => c.source === 'generated')).toHaveLength(1);
  });
});
