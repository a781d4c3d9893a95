import { createHash } from 'node:crypto';
import { invalid } from './validation.js';

/** Pure MAC address helpers. */

const MAC_RE = /^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$/;
const INSTANCE_ID_RE = /^i-[0-9a-f]{17}$/;

/** Lower-case a MAC and check it: six ':'-separated octets, unicast, not all zeros. */
export function normalizeMac(mac: string): string {
  const m = typeof mac === 'string' ? mac.toLowerCase() : '';
  if (!MAC_RE.test(m))
    throw invalid('InvalidMacAddress', `invalid MAC address ${JSON.stringify(mac)}`);
  if (m === '00:00:00:00:00:00')
    throw invalid('InvalidMacAddress', 'the all-zero MAC is not allowed');
  if (parseInt(m.slice(0, 2), 16) & 1) {
    throw invalid('InvalidMacAddress', `${m} is a multicast address, not a unicast interface MAC`);
  }
  return m;
}

export function isMac(value: unknown): value is string {
  try {
    return typeof value === 'string' && normalizeMac(value) === value.toLowerCase();
  } catch {
    return false;
  }
}

export function assertInstanceId(instanceId: string): string {
  if (typeof instanceId !== 'string' || !INSTANCE_ID_RE.test(instanceId)) {
    throw invalid(
      'InvalidInstanceId',
      `invalid instance id ${JSON.stringify(instanceId)} (i- + 17 hex)`,
    );
  }
  return instanceId;
}

/**
 * The guest MAC of an instance: QEMU's OUI 52:54:00 plus 24 bits of SHA-256 over the id. The
 * same id always gives the same MAC. 24 bits collide by the birthday bound (about 3% for 1000
 * instances on one network), so the caller keeps MACs unique per network (a unique index) and on
 * a clash asks again with attempt = 1, 2, ...
 */
export function macForInstance(instanceId: string, attempt = 0): string {
  assertInstanceId(instanceId);
  if (!Number.isInteger(attempt) || attempt < 0) {
    throw invalid('InvalidNetworkSpec', `attempt must be a non-negative integer, got ${attempt}`);
  }
  const digest = createHash('sha256')
    .update(attempt === 0 ? instanceId : `${instanceId}#${attempt}`)
    .digest();
  const tail = [...digest.subarray(0, 3)].map((b) => b.toString(16).padStart(2, '0'));
  return ['52', '54', '00', ...tail].join(':');
}

/**
 * The MAC for the host end (the tap) of a guest NIC, as libvirt does it: the guest MAC with the
 * first octet replaced by 0xfe. The tap must not carry the guest's own MAC (the bridge would
 * then take the guest's frames for itself), and 0xfe keeps taps from becoming the lowest MAC
 * on a bridge.
 */
export function tapMacFor(guestMac: string): string {
  return `fe${normalizeMac(guestMac).slice(2)}`;
}

/**
 * A stable, locally administered unicast MAC for a bridge, derived from its name. A bridge with
 * no fixed MAC takes the lowest MAC of its ports, so its (gateway) MAC would change as guests
 * come and go and the guests' ARP caches would go stale.
 */
export function bridgeMacFor(bridge: string): string {
  const digest = createHash('sha256').update(`minicloud-bridge:${bridge}`).digest();
  const tail = [...digest.subarray(0, 5)].map((b) => b.toString(16).padStart(2, '0'));
  return ['02', ...tail].join(':');
}
