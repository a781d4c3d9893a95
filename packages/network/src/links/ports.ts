import { assertTapName, Batcher } from '@minicloud/domain';
import { HostCommandError } from '@minicloud/host';
import type { EnsurePortResult, GuestPorts, PortSpec } from '../driver.js';
import { NetworkDriverError } from '../errors.js';
import type { LinuxHost } from '../host/linux-host.js';
import {
  failedPortLine,
  portSetArgs,
  renderPortBatch,
  validatePort,
  type ValidPort,
} from './port-batch.js';

/**
 * The guests' taps: persistent, attached to their bridge and up, opened by libvirt with
 * <interface type='ethernet'><target dev='TAP' managed='no'/>. Taps asked for while a batch is
 * being made are made together by the next one: one `ip -batch` process for a whole burst of
 * launches. `ip -batch` stops at the first failing line; the port of that line is looked at on
 * its own (most likely its tap exists already) and the rest go into a new batch.
 */
export class Ports implements GuestPorts {
  private readonly batcher = new Batcher<ValidPort, EnsurePortResult>((ports) =>
    this.makePorts(ports),
  );

  constructor(private readonly host: LinuxHost) {}

  async ensurePort(port: PortSpec): Promise<EnsurePortResult> {
    return this.batcher.add(validatePort(port));
  }

  async removePort(tap: string): Promise<boolean> {
    assertTapName(tap);
    const link = await this.host.showLink(tap, 'link');
    if (link === null) return false;
    if (link.linkinfo?.info_kind !== 'tun') {
      throw new NetworkDriverError(
        'NetworkLinkConflict',
        `${tap} is not a tun/tap device; not deleting it`,
      );
    }
    return this.host.deleteLink(tap);
  }

  private async makePorts(
    ports: readonly ValidPort[],
  ): Promise<PromiseSettledResult<EnsurePortResult>[]> {
    const results: PromiseSettledResult<EnsurePortResult>[] = [];
    const made = { status: 'fulfilled', value: { created: true, changed: true } } as const;
    let rest = ports;
    while (rest.length) {
      try {
        await this.host.exec('ip', ['-batch', '-'], renderPortBatch(rest));
        results.push(...rest.map(() => made));
        break;
      } catch (e) {
        if (!(e instanceof HostCommandError)) throw e;
        // No line named (e.g. a timeout): look at the first port, retry the others.
        const failed = failedPortLine(e.stderr) ?? { port: 0, attach: false };
        const at = Math.min(failed.port, rest.length - 1);
        results.push(...rest.slice(0, at).map(() => made));
        const port = rest[at]!;
        results.push(
          await settle(failed.attach ? this.attachFailed(port, e) : this.existingTap(port, e)),
        );
        rest = rest.slice(at + 1);
      }
    }
    return results;
  }

  /** We created the tap but could not attach it (e.g. no such bridge): leave nothing behind. */
  private async attachFailed(port: ValidPort, e: HostCommandError): Promise<never> {
    await this.host.deleteLink(port.tap).catch(() => undefined);
    throw new NetworkDriverError(
      'NetworkHostError',
      `cannot attach tap ${port.tap} to ${port.bridge}: ${e.stderr.trim()}`,
      e,
    );
  }

  /** Creating failed (TUNSETIFF: EBUSY when it exists): check it, fix what differs. */
  private async existingTap(
    port: ValidPort,
    addError: HostCommandError,
  ): Promise<EnsurePortResult> {
    const link = await this.host.showLink(port.tap, 'link');
    if (link === null) {
      throw new NetworkDriverError(
        'NetworkHostError',
        `could not create tap ${port.tap}: ${String(addError)}`,
        addError,
      );
    }
    const info = link.linkinfo;
    if (info?.info_kind !== 'tun' || info.info_data?.type !== 'tap') {
      throw new NetworkDriverError(
        'NetworkLinkConflict',
        `${port.tap} exists but is not a tap device`,
      );
    }
    if ((info.info_data.multi_queue ?? false) !== port.multiQueue) {
      throw new NetworkDriverError(
        'NetworkLinkConflict',
        `tap ${port.tap} exists with multi_queue ${!port.multiQueue ? 'on' : 'off'}; remove it first`,
      );
    }
    const ok =
      link.master === port.bridge &&
      (link.flags ?? []).includes('UP') &&
      (port.address === undefined || link.address === port.address);
    if (ok) return { created: false, changed: false };
    await this.host.exec('ip', portSetArgs(port));
    return { created: false, changed: true };
  }
}

async function settle<T>(p: Promise<T>): Promise<PromiseSettledResult<T>> {
  try {
    return { status: 'fulfilled', value: await p };
  } catch (reason) {
    return { status: 'rejected', reason };
  }
}
