import type { Db } from '@minicloud/db';
import type { JobQueue } from '@minicloud/queue';
import type { Hypervisor, VirtType } from '@minicloud/hypervisor';
import type { LinuxNetworkDriver, BridgeNetworkSpec } from '@minicloud/network';
import type { FileVolumeDriver, ImageStore, VolumeDriver } from '@minicloud/storage';
import type { KeyedLock } from './keyed-lock.js';

export interface WorkerSettings {
  prefix: string;
  virtType: VirtType;
  instancesDir: string;
  volumesDir: string;
  stopTimeoutMs: number;
  terminatedRetentionMs: number;
  network: BridgeNetworkSpec;
  /** The default network's name in the address table. */
  networkName: string;
}

export interface WorkerDeps {
  db: Db;
  queue: JobQueue;
  hypervisor: Hypervisor;
  network: LinuxNetworkDriver;
  images: ImageStore;
  /** Data volumes: the configured driver (LVM or files). */
  volumes: VolumeDriver;
  /** Root volumes: always qcow2 overlays on their image, in settings.volumesDir. */
  rootVolumes: FileVolumeDriver;
  locks: KeyedLock;
  settings: WorkerSettings;
  log: (msg: string) => void;
}
