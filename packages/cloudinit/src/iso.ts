import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import { run as hostRun, type CommandRunner } from '@minicloud/host';
import { SeedError, type SeedDocuments } from './seed.js';

/** The NoCloud file names, exactly as cloud-init looks for them on the `cidata` volume. */
export const SEED_FILES = ['meta-data', 'user-data', 'network-config'] as const;

/** argv for genisoimage (run with the staging directory as cwd). Pure, exported for tests. */
export function genisoimageArgs(output: string): string[] {
  return ['-output', output, '-volid', 'cidata', '-joliet', '-rock', '-quiet', ...SEED_FILES];
}

/**
 * Write the seed as an ISO 9660 image (volume id `cidata`, Joliet + Rock Ridge) at `path`: the
 * files are staged in a temp dir, genisoimage writes `<path>.tmp-*`, which is renamed over
 * `path`, so a reader never sees half an ISO. Safe to repeat (the ISO is rebuilt each time).
 */
export async function writeSeedIso(
  path: string,
  docs: SeedDocuments,
  run: CommandRunner = hostRun,
): Promise<void> {
  if (typeof path !== 'string' || !isAbsolute(path) || path.split('/').includes('..')) {
    throw new SeedError(`seed ISO path must be absolute: ${JSON.stringify(path)}`);
  }
  await mkdir(dirname(path), { recursive: true });
  const stage = await mkdtemp(join(tmpdir(), 'minicloud-seed-'));
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

/** Remove a seed ISO; missing is fine. */
export async function removeSeedIso(path: string): Promise<void> {
  if (typeof path !== 'string' || !isAbsolute(path))
    throw new SeedError(`bad path ${JSON.stringify(path)}`);
  await rm(path, { force: true });
}
