import type { EnsureNetworkResult, VpcNetworkSpec } from '@minicloud/network';
import type { WorkerDeps } from '../context.js';
import type { ConvergeReport } from './converge-report.js';
import { Rerun } from './rerun.js';

/** A VPC this process made ready on the host, for the spec `key` (its JSON). */
export interface EnsuredVpc {
  key: string;
  spec: VpcNetworkSpec;
  subnetIds: ReadonlySet<string>;
  done: Promise<EnsureNetworkResult>;
}

/** What this worker process knows about the host's network (it did it itself). */
export interface HostNetworkState {
  /** Per VPC: the spec last ensured on the host and that ensure. */
  ensured: Map<string, EnsuredVpc>;
  converge: Rerun<ConvergeReport>;
  /** Per VPC: its DHCP reservation writer (one run at a time). */
  reservations: Map<string, { rerun: Rerun<void>; spec: VpcNetworkSpec | null }>;
  /** What the last converge skipped or noted (logged again only when it changes). */
  lastWarnings: string;
  announcing: Promise<void>;
}

// Keyed by the driver: one per process, and what the state describes is what that driver did.
const states = new WeakMap<object, HostNetworkState>();

export function stateOf(deps: Pick<WorkerDeps, 'network'>): HostNetworkState {
  let s = states.get(deps.network);
  if (!s) {
    s = {
      ensured: new Map(),
      converge: new Rerun(),
      reservations: new Map(),
      lastWarnings: '',
      announcing: Promise.resolve(),
    };
    states.set(deps.network, s);
  }
  return s;
}
