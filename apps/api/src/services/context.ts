import type { Db } from '@minicloud/db';
import type { JobQueue } from '@minicloud/queue';

export interface ServiceContext {
  db: Db;
  queue: JobQueue;
  settings: {
    prefix: string;
    /** The default VPC's CIDR (used once, when the default VPC is created). */
    defaultVpcCidr: string;
    gpuDevices: string[];
    maxUserDataBytes: number;
    terminatedRetentionMs: number;
    imageImportDirs: string[];
    maxVolumeGiB: number;
  };
}
