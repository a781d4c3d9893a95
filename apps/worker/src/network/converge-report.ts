/** What a network converge did, and its error when some steps failed. */

export interface ConvergeReport {
  /** VPCs whose network was ensured. */
  vpcs: number;
  /** What changed on the host. */
  changed: string[];
  /** VPC networks and Elastic IP addresses removed. */
  removed: string[];
  /** Elastic IPs put on / taken off the uplink, and those whose association changed. */
  elasticIps: { added: string[]; removed: string[]; changed: string[] };
  /** Database rows left out because the host cannot have them (with why). */
  skipped: string[];
  notes: string[];
  ms: number;
}

/** Thrown when some steps failed; the others were done. */
export class NetworkConvergeError extends Error {
  constructor(
    readonly failures: string[],
    readonly report: ConvergeReport,
  ) {
    super(`network converge: ${failures.join('; ')}`);
  }
}
