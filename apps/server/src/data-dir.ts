import { chmod, mkdir, open } from 'node:fs/promises';
import type { Config } from '@minicloud/config';
import { ensurePrivateDir } from '@minicloud/host';

/**
 * The data directory's permissions, made at every start (an older installation's 0755/0644 is
 * fixed too). Guest data (images, root overlays, seeds with user-data, console logs, volumes,
 * snapshots, the database with user-data and public keys, the admin key) is readable by root
 * only; QEMU may pass through the guest directories to the files libvirt labels for it.
 *
 *   <dataDir>            0711  dnsmasq (as nobody) and QEMU pass through it; no one lists it
 *   images/ instances/ volumes/ snapshots/
 *                        0710 root:<QEMU's group> (0700 when libvirt labels no files for QEMU):
 *                        libvirt's dynamic ownership chowns each disk and seed to QEMU while its
 *                        guest runs; the files themselves stay 0600
 *   networks/            0755  dnsmasq re-reads its hosts file there as nobody (MACs and addresses)
 *   minicloud.db(-wal,-shm), admin-key   0600
 */
export async function prepareDataDir(config: Config, qemuGid: number | null): Promise<void> {
  await mkdir(config.dataDir, { recursive: true, mode: 0o711 });
  await chmod(config.dataDir, 0o711);
  for (const dir of [
    config.paths.images,
    config.paths.instances,
    config.paths.volumes,
    config.paths.snapshots,
  ])
    await ensurePrivateDir(dir, qemuGid);
  await mkdir(config.paths.networks, { recursive: true, mode: 0o755 });
  await chmod(config.paths.networks, 0o755);
  await protectDatabaseFile(config.databaseUrl);
}

/**
 * The SQLite file exists with mode 0600 before anything opens it: SQLite gives its -wal, -shm
 * and -journal files the database file's mode, so they are private too.
 */
async function protectDatabaseFile(url: string): Promise<void> {
  const file = url.replace(/^file:/, '');
  await (await open(file, 'a', 0o600)).close();
  for (const path of [file, `${file}-wal`, `${file}-shm`, `${file}-journal`])
    await chmod(path, 0o600).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOENT') throw e;
    });
}
