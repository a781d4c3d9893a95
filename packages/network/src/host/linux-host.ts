import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  HostCommandError,
  pathExists,
  run as hostRun,
  type CommandRunner,
  type RunResult,
} from '@minicloud/host';
import { NetworkDriverError } from '../errors.js';

/**
 * The thin layer over the Linux host that every part of the network driver shares: host commands
 * (argv only, through @minicloud/host, each with a timeout), `ip -j` output, and the procfs and
 * sysfs roots (replaceable in tests).
 */

export interface LinuxHostOptions {
  /** Host command runner (default: run from @minicloud/host). */
  run?: CommandRunner;
  /** Timeout of each host command (default 15 s). */
  commandTimeoutMs?: number;
  /** Roots of procfs and sysfs (tests only). */
  procRoot?: string;
  sysRoot?: string;
}

/** One address of a link, as `ip -j addr` reports it. */
export interface IpAddrInfo {
  family?: string;
  local?: string;
  prefixlen?: number;
  scope?: string;
  label?: string;
}

/** One link, as `ip -j -d link/addr` reports it. */
export interface IpLink {
  ifname: string;
  flags?: string[];
  master?: string;
  address?: string;
  linkinfo?: {
    info_kind?: string;
    info_data?: { type?: string; multi_queue?: boolean; persist?: boolean };
  };
  addr_info?: IpAddrInfo[];
}

export class LinuxHost {
  readonly run: CommandRunner;
  readonly timeoutMs: number;
  readonly procRoot: string;
  readonly sysRoot: string;

  constructor(options: LinuxHostOptions = {}) {
    this.run = options.run ?? hostRun;
    this.timeoutMs = options.commandTimeoutMs ?? 15_000;
    this.procRoot = options.procRoot ?? '/proc';
    this.sysRoot = options.sysRoot ?? '/sys';
  }

  exec(command: string, args: string[], input?: string): Promise<RunResult> {
    return this.run(command, args, {
      timeoutMs: this.timeoutMs,
      ...(input === undefined ? {} : { input }),
    });
  }

  /** Like exec, but exit code 1 is an answer (e.g. "no such table"), not an error. */
  probe(command: string, args: string[]): Promise<RunResult> {
    return this.run(command, args, { timeoutMs: this.timeoutMs, okExitCodes: [1] });
  }

  async ipJson(args: string[]): Promise<IpLink[]> {
    const r = await this.exec('ip', ['-j', ...args]);
    const text = r.stdout.trim();
    return text ? (JSON.parse(text) as IpLink[]) : [];
  }

  /** One link (with its addresses for 'addr'), or null when it does not exist. */
  async showLink(name: string, what: 'link' | 'addr'): Promise<IpLink | null> {
    try {
      const links = await this.ipJson(['-d', what, 'show', 'dev', name]);
      return links[0] ?? null;
    } catch (e) {
      if (isMissingDevice(e)) return null;
      throw e;
    }
  }

  /** Delete a link; false when it did not exist. */
  async deleteLink(name: string): Promise<boolean> {
    try {
      await this.exec('ip', ['link', 'del', 'dev', name]);
      return true;
    } catch (e) {
      if (isMissingDevice(e)) return false;
      throw e;
    }
  }

  /** The link exists (asked of sysfs: no process). */
  linkExists(name: string): Promise<boolean> {
    return /^[A-Za-z0-9_.@-]{1,15}$/.test(name)
      ? pathExists(join(this.sysRoot, 'class/net', name))
      : Promise.resolve(false);
  }

  /** Turn net.ipv4.ip_forward on; a note saying so (with `why`), or null when it already was. */
  async enableIpForward(why: string): Promise<string | null> {
    const path = join(this.procRoot, 'sys/net/ipv4/ip_forward');
    const current = (await readFile(path, 'utf8')).trim();
    if (current === '1') return null;
    await writeFile(path, '1\n');
    return `enabled net.ipv4.ip_forward (was ${current}) for ${why}`;
  }

  hostError(message: string, e: unknown): NetworkDriverError {
    return new NetworkDriverError('NetworkHostError', `${message}: ${String(e)}`, e);
  }
}

export function isMissingDevice(e: unknown): boolean {
  return (
    e instanceof HostCommandError &&
    /does not exist|Cannot find device|No such device/i.test(e.stderr)
  );
}

/** The program is not installed (spawn failed with ENOENT). */
export function isMissingCommand(e: unknown): boolean {
  return e instanceof HostCommandError && e.exitCode === null && /\bENOENT\b/.test(e.stderr);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Milliseconds since t0 (performance.now()), two decimals. */
export function msSince(t0: number): number {
  return Math.round((performance.now() - t0) * 100) / 100;
}
