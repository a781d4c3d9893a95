import type { KeyedLock } from '@minicloud/domain';
import type { Db } from '@minicloud/db';
import type { JobQueue } from '@minicloud/queue';
import type { Hypervisor, VirtType } from '@minicloud/hypervisor';
import type { NetworkDriver } from '@minicloud/network';
import type { FileVolumeDriver, ImageStore, VolumeDriver } from '@minicloud/storage';

export interface WorkerSettings {
  prefix: string;
  virtType: VirtType;
  instancesDir: string;
  volumesDir: string;
  stopTimeoutMs: number;
  terminatedRetentionMs: number;
  /** Where each VPC's dnsmasq keeps its files (one directory per VPC id). */
  networksDir: string;
  /** The host's interface to the outside (NAT, Elastic IPs), or null for none. */
  uplink: string | null;
  /**
   * QEMU's group (libvirt's DAC label): instance directories are 0710 owned by it so QEMU can
   * reach the seed; null or absent: 0700 (no QEMU opens them, e.g. libvirt's test driver).
   */
  qemuGid?: number | null;
}

export interface WorkerDeps {
  db: Db;
  queue: JobQueue;
  hypervisor: Hypervisor;
  /** VPC networks, guest ports, Elastic IPs and security groups. */
  network: NetworkDriver;
  images: ImageStore;
  /** Data volumes: the configured driver (LVM or files). */
  volumes: VolumeDriver;
  /** Root volumes: always qcow2 overlays on their image, in settings.volumesDir. */
  rootVolumes: FileVolumeDriver;
  /** One operation at a time per instance, image, volume (and a few network keys). */
  locks: KeyedLock;
  settings: WorkerSettings;
  log: (msg: string) => void;
}
