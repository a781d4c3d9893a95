import { assertBridgeName, invalid, KeyedLock, normalizeMac } from '@minicloud/domain';
import { pathExists, removePath } from '@minicloud/host';
import { renderVpcDhcpHosts, type DhcpLease, type DhcpReservation } from '../dhcp/dhcp-hosts.js';
import { assertSafePath, dnsmasqPaths } from '../dhcp/dnsmasq-args.js';
import type { DnsmasqSupervisor } from '../dhcp/dnsmasq.js';
import type {
  EnsureNetworkResult,
  RemoveNetworkResult,
  SetReservationsResult,
  VpcNetworkSpec,
  VpcNetworks,
} from '../driver.js';
import type { LinuxHost } from '../host/linux-host.js';
import type { Links } from '../links/links.js';
import { assertStateDir, validateVpcSpec, type ValidVpc } from './vpc-spec.js';

/** Per bridge: the latest full set asked for, and what was applied (see setVpcReservations). */
interface ReservationState {
  requested: number;
  applied: number;
  pending: { vpc: ValidVpc; reservations: DhcpReservation[]; content: string } | null;
  lastResult: SetReservationsResult | null;
}

/**
 * The host side of a VPC's layer 2/3: one Linux bridge holding each subnet's router address, and
 * one dnsmasq serving every subnet's reservations. One operation per bridge at a time.
 */
export class VpcBridges implements VpcNetworks {
  private readonly locks = new KeyedLock();
  private readonly reservations = new Map<string, ReservationState>();

  constructor(
    private readonly host: LinuxHost,
    private readonly links: Links,
    private readonly dnsmasq: DnsmasqSupervisor,
  ) {}

  async ensureVpcNetwork(spec: VpcNetworkSpec): Promise<EnsureNetworkResult> {
    const v = validateVpcSpec(spec);
    return this.locks.run(lockKey(v.bridge), async () => {
      const changed: string[] = [];
      const notes: string[] = [];
      const { found, created } = await this.links.ensureBridge(v.bridge);
      if (created) changed.push(`created bridge ${v.bridge}`);
      // The host routes between the VPC's subnets and to the uplink.
      const fwd = await this.host.enableIpForward(`VPC bridge ${v.bridge}`);
      if (fwd) {
        changed.push(fwd);
        notes.push(fwd);
      }
      await this.links.writeBridgeSysctls(v.bridge);

      const want = new Map(v.subnets.map((s) => [`${s.gatewayIp}/${s.net.prefixLength}`, s]));
      const have = (found?.addr_info ?? [])
        .filter((a) => a.family === 'inet')
        .map((a) => `${a.local}/${a.prefixlen}`);
      const batch: string[] = [];
      let added = false;
      for (const a of have) {
        if (!want.has(a)) {
          batch.push(`address del ${a} dev ${v.bridge}`);
          changed.push(`removed ${a} from ${v.bridge}`);
        }
      }
      for (const a of want.keys()) {
        if (!have.includes(a)) {
          batch.push(`address replace ${a} dev ${v.bridge}`);
          changed.push(`added ${a} to ${v.bridge}`);
          added = true;
        }
      }
      if (!(found?.flags ?? []).includes('UP')) {
        batch.push(`link set dev ${v.bridge} up`);
        if (!created) changed.push(`set ${v.bridge} up`);
      }
      if (batch.length) await this.host.exec('ip', ['-batch', '-'], `${batch.join('\n')}\n`);

      await this.dnsmasq.prepareStateDir(v.stateDir);
      if (v.subnets.length === 0) {
        const stopped = await this.dnsmasq.stopAll(v.bridge, v.paths.pidFile);
        changed.push(...stopped.map(() => 'stopped dnsmasq (no subnets)'));
      } else {
        // A hosts file with reservations of a deleted subnet would make dnsmasq log errors; the
        // caller resends the reservations after changing subnets.
        const what = await this.dnsmasq.ensure(v, created || added);
        if (what) changed.push(what);
      }
      return { changed, notes };
    });
  }

  async removeVpcNetwork(
    spec: Pick<VpcNetworkSpec, 'bridge' | 'stateDir'>,
  ): Promise<RemoveNetworkResult> {
    const bridge = assertBridgeName(spec.bridge);
    const stateDir = assertStateDir(spec.stateDir);
    return this.locks.run(lockKey(bridge), async () => {
      const removed: string[] = [];
      for (const pid of await this.dnsmasq.stopAll(bridge, dnsmasqPaths(stateDir).pidFile))
        removed.push(`stopped dnsmasq ${pid}`);
      removed.push(...(await this.links.removeBridge(bridge)));
      if (await pathExists(stateDir)) {
        await removePath(stateDir);
        removed.push(`removed ${stateDir}`);
      }
      this.reservations.delete(bridge);
      return { removed };
    });
  }

  setVpcReservations(
    spec: VpcNetworkSpec,
    reservations: readonly DhcpReservation[],
  ): Promise<SetReservationsResult> {
    let v: ValidVpc;
    let normalized: DhcpReservation[];
    let content: string;
    try {
      v = validateVpcSpec(spec);
      if (v.subnets.length === 0)
        throw invalid('InvalidNetworkSpec', `VPC bridge ${v.bridge} has no subnets to serve`);
      normalized = reservations.map((r) => ({ ...r, mac: normalizeMac(r.mac) }));
      content = renderVpcDhcpHosts(normalized, spec.subnets);
    } catch (e) {
      return Promise.reject(e);
    }
    // Coalesced: a call whose set was superseded while it waited returns the newer result.
    let state = this.reservations.get(v.bridge);
    if (!state) {
      state = { requested: 0, applied: 0, pending: null, lastResult: null };
      this.reservations.set(v.bridge, state);
    }
    const st = state;
    const generation = ++st.requested;
    st.pending = { vpc: v, reservations: normalized, content };
    return this.locks.run(lockKey(v.bridge), async () => {
      if (st.applied >= generation && st.lastResult) return st.lastResult;
      const target = st.requested;
      const p = st.pending!;
      const result = await this.dnsmasq.applyReservations(p.vpc, p.reservations, p.content);
      st.applied = target;
      st.lastResult = result;
      return result;
    });
  }

  /** Forget the reservations applied (the bridges were removed behind this part's back). */
  forget(): void {
    this.reservations.clear();
  }

  readLeases(spec: Pick<VpcNetworkSpec, 'stateDir'>): Promise<DhcpLease[]> {
    return this.dnsmasq.readLeases(assertSafePath(spec.stateDir, 'stateDir'));
  }
}

function lockKey(bridge: string): string {
  return `bridge:${bridge}`;
}
