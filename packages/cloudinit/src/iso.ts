import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute } from 'node:path';
import { buildIso } from './iso9660.js';
import { SeedError, type SeedDocuments } from './seed.js';

/** The NoCloud file names, exactly as cloud-init looks for them on the `cidata` volume. */
export const SEED_FILES = ['meta-data', 'user-data', 'network-config'] as const;

/** The volume id cloud-init's NoCloud datasource looks for (blkid LABEL=cidata). */
export const SEED_VOLUME_ID = 'cidata';

/**
 * argv for genisoimage (run with a directory holding the files as cwd): the reference writer the
 * in-process one replaced, kept for the tests and the benchmark that compare the two. Pure.
 */
export function genisoimageArgs(output: string): string[] {
  return ['-output', output, '-volid', SEED_VOLUME_ID, '-joliet', '-rock', '-quiet', ...SEED_FILES];
}

/** The seed as an ISO 9660 image (volume id `cidata`, Rock Ridge + Joliet). Pure. */
export function buildSeedIso(docs: SeedDocuments, date?: Date): Buffer {
  return buildIso(
    {
      'meta-data': docs.metaData,
      'user-data': docs.userData,
      'network-config': docs.networkConfig,
    },
    SEED_VOLUME_ID,
    date,
  );
}

/**
 * Write the seed ISO at `path`, built in-process: written to `<path>.tmp-*` (mode 0600: it
 * carries user-data; libvirt chowns it to QEMU's user while the guest runs) and renamed over
 * `path`, so a reader never sees half an ISO. Safe to repeat (the ISO is rebuilt each time).
 */
export async function writeSeedIso(path: string, docs: SeedDocuments): Promise<void> {
  if (typeof path !== 'string' || !isAbsolute(path) || path.split('/').includes('..')) {
    throw new SeedError(`seed ISO path must be absolute: ${JSON.stringify(path)}`);
  }
  const image = buildSeedIso(docs);
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.tmp-${process.pid}-${Math.random().toString(16).slice(2, 10)}`;
  try {
    await writeFile(tmp, image, { mode: 0o600 });
    await rename(tmp, path);
  } finally {
    await rm(tmp, { force: true });
  }
}

/** Remove a seed ISO; missing is fine. */
export async function removeSeedIso(path: string): Promise<void> {
  if (typeof path !== 'string' || !isAbsolute(path))
    throw new SeedError(`bad path ${JSON.stringify(path)}`);
  await rm(path, { force: true });
}
