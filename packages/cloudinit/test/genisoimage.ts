/**
 * The seed ISO as minicloud wrote it before the in-process builder: the files staged in a temp
 * dir, `genisoimage -volid cidata -joliet -rock` writing `<path>.tmp-*`, renamed over `path`.
 * The reference the integration test and the benchmark compare the builder with.
 */
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '@minicloud/host';
import { genisoimageArgs, type SeedDocuments } from '../src/index.js';

export async function writeSeedIsoWithGenisoimage(
  path: string,
  docs: SeedDocuments,
): Promise<void> {
  const stage = await mkdtemp(join(tmpdir(), 'minicloud-test-genisoimage-'));
  const tmp = `${path}.tmp-${process.pid}-${Math.random().toString(16).slice(2, 10)}`;
  try {
    await Promise.all([
      writeFile(join(stage, 'meta-data'), docs.metaData),
      writeFile(join(stage, 'user-data'), docs.userData),
      writeFile(join(stage, 'network-config'), docs.networkConfig),
    ]);
    await run('genisoimage', genisoimageArgs(tmp), { cwd: stage, timeoutMs: 30_000 });
    await rename(tmp, path);
  } finally {
    await rm(tmp, { force: true });
    await rm(stage, { recursive: true, force: true });
  }
}
