import { HostCommandError } from '@minicloud/host';
import { isMissingCommand, type LinuxHost } from '../host/linux-host.js';

const CONNTRACK_MISSING =
  'conntrack (Debian package conntrack) is not installed: existing connections to a moved ' +
  'Elastic IP keep their old target until they expire';

/**
 * Deletes conntrack entries to or NATed to public addresses: their DNAT/SNAT binding is fixed at
 * a flow's first packet, so without this a moved address keeps feeding the old instance until the
 * flow expires. Needs `conntrack` (Debian package conntrack); without it, a note says so once.
 */
export class Conntrack {
  private missing = false;

  constructor(private readonly host: LinuxHost) {}

  async flush(publicIps: readonly string[]): Promise<{ deleted: number; notes: string[] }> {
    if (publicIps.length === 0) return { deleted: 0, notes: [] };
    if (this.missing) return { deleted: 0, notes: [CONNTRACK_MISSING] };
    // Both directions of every address, a few conntrack processes at a time (each walks the
    // whole conntrack table).
    const jobs = publicIps.flatMap((ip) => [
      ['--orig-dst', ip],
      ['--reply-dst', ip],
    ]);
    let deleted = 0;
    for (let i = 0; i < jobs.length; i += 8) {
      const results = await Promise.allSettled(
        jobs.slice(i, i + 8).map(async ([selector, ip]) => {
          const args = ['-D', selector!, ip!];
          const r = await this.host.probe('conntrack', args);
          const m = /([0-9]+) flow entries have been deleted/.exec(r.stderr);
          if (m) return Number(m[1]);
          // An entry that went away between conntrack's dump and its delete (expired, or
          // deleted by the other direction's run) is what we wanted anyway.
          if (r.exitCode === 0 || /such conntrack doesn't exist/.test(r.stderr)) return 0;
          throw new HostCommandError('conntrack', args, r.exitCode, r.stderr, false);
        }),
      );
      for (const r of results) {
        if (r.status === 'fulfilled') {
          deleted += r.value;
        } else if (isMissingCommand(r.reason)) {
          this.missing = true;
          return { deleted, notes: [CONNTRACK_MISSING] };
        } else {
          throw this.host.hostError('conntrack -D failed', r.reason);
        }
      }
    }
    return { deleted, notes: [] };
  }
}
