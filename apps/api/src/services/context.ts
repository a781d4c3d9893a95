import type { Db } from '@minicloud/db';
import type { JobQueue } from '@minicloud/queue';

export interface ServiceContext {
  db: Db;
  queue: JobQueue;
  settings: {
    prefix: string;
    networkCidr: string;
    /** The default network's name in the address table. */
    networkName: string;
    gatewayIp: string;
    gpuDevices: string[];
    maxUserDataBytes: number;
    terminatedRetentionMs: number;
    instancesDir: string;
    imageImportDirs: string[];
    maxVolumeGiB: number;
  };
}
