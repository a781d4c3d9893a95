import type { OutboundAllowList } from '@minicloud/domain';
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
    /** What an image URL may name beyond public addresses (MINICLOUD_IMAGE_IMPORT_ALLOW). */
    imageImportAllow: OutboundAllowList;
    maxVolumeGiB: number;
  };
}
