import { chmod, chown, mkdir, open, rename, rm, stat, writeFile, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';

/** Write a file atomically (temp file + rename) so readers never see half of it. */
export async function writeFileAtomic(
  path: string,
  data: string | Buffer,
  mode = 0o644,
): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}-${Math.random().toString(16).slice(2)}`;
  await writeFile(tmp, data, { mode });
  await rename(tmp, path);
}

/**
 * A directory of guest data (made if missing, its mode and group set if not): 0700, or with
 * `traverseGid` 0710 owned by that group, so QEMU (running as that group) can open the files
 * inside it whose names it is given, and no other user can enter or list it.
 */
export async function ensurePrivateDir(path: string, traverseGid: number | null = null) {
  await mkdir(path, { recursive: true, mode: 0o700 });
  if (traverseGid !== null) await chown(path, process.getuid?.() ?? 0, traverseGid);
  await chmod(path, traverseGid === null ? 0o700 : 0o710);
}

/** Remove a file or directory; a missing one is fine (idempotent undo). */
export async function removePath(path: string): Promise<void> {
  await rm(path, { recursive: true, force: true });
}

/** True when the path exists; false only for ENOENT (a permission error is thrown, not hidden). */
export async function pathExists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}

export async function readFileIfExists(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

/** Check a user- or id-derived name before it reaches a path, XML or a command. */
export function assertSafeName(name: string, what = 'name'): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/.test(name) || name.includes('..')) {
    throw new Error(`unsafe ${what}: ${JSON.stringify(name)}`);
  }
  return name;
}

/** Flush a file (or a directory, after a rename into it) to disk. */
export async function fsyncPath(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
