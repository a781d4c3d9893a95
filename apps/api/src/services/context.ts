import type { OutboundAllowList } from '@minicloud/domain';
import type { Db } from '@minicloud/db';
import type { JobQueue } from '@minicloud/queue';
import type { HostAddress } from './network-rules.js';

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
    /**
     * The uplink's own addresses and its gateway, read from the host at start: no public pool
     * may hold them. Absent: no uplink (or not known to this process).
     */
    uplinkAddresses?: HostAddress[];
  };
}
