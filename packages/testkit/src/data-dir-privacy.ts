import { lstat, readdir } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { run } from '@minicloud/host';

/**
 * What in a minicloud data directory another user could read: every entry that grants more
 * than the layout allows, as `path mode` lines (empty when private). Allowed: the data
 * directory itself may let others pass (0711: dnsmasq and QEMU reach their subdirectories),
 * a directory may let its group pass (0710: QEMU's group), and networks/ (dnsmasq's hosts and
 * lease files) is left out. Every file: owner only (0600 or less).
 */
export async function dataDirExposure(dataDir: string): Promise<string[]> {
  const out: string[] = [];
  const visit = async (path: string, top: boolean) => {
    const st = await lstat(path).catch(() => null);
    if (!st) return; // removed meanwhile
    const mode = st.mode & 0o7777;
    const allowed = st.isDirectory() ? (top ? 0o711 : 0o710) : 0o600;
    if ((mode & ~allowed & 0o777) !== 0)
      out.push(`${relative(dataDir, path) || '.'} ${mode.toString(8).padStart(4, '0')}`);
    if (!st.isDirectory()) return;
    for (const name of (await readdir(path).catch(() => [])).sort()) {
      if (top && name === 'networks') continue;
      await visit(join(path, name), false);
    }
  };
  await visit(dataDir, true);
  return out;
}

/**
 * The files under the data directory (networks/ left out) that the unprivileged user `nobody`
 * can open for reading: each tried with `head -c1` as that user (no supplementary groups).
 */
export async function filesReadableByNobody(dataDir: string): Promise<string[]> {
  const files: string[] = [];
  const visit = async (path: string, top: boolean) => {
    const st = await lstat(path).catch(() => null);
    if (st?.isFile()) files.push(path);
    if (!st?.isDirectory()) return;
    for (const name of await readdir(path).catch(() => [])) {
      if (top && name === 'networks') continue;
      await visit(join(path, name), false);
    }
  };
  await visit(dataDir, true);
  const readable: string[] = [];
  for (const file of files.sort()) {
    const r = await run(
      'setpriv',
      ['--reuid=65534', '--regid=65534', '--clear-groups', '--', 'head', '-c1', file],
      { okExitCodes: [1] },
    );
    if (r.exitCode === 0) readable.push(relative(dataDir, file));
  }
  return readable;
}
