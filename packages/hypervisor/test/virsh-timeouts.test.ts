/**
 * virsh runs (what the binding lacks) have a timeout too: a virsh stuck on a wedged libvirtd is
 * killed by @minicloud/host, and the error says LibvirtTimeout with the operation and domain.
 */
import { HostCommandError, type CommandRunner, type RunOptions } from '@minicloud/host';
import { DiskOps, HypervisorError } from '../src/index.js';

function hangingVirsh(seen: RunOptions[]): CommandRunner {
  return async (command, args, options = {}) => {
    seen.push(options);
    throw new HostCommandError(command, args, null, '', true);
  };
}

describe('virsh timeouts', () => {
  it('gives each virsh run the configured timeout and reports a kill as LibvirtTimeout', async () => {
    const seen: RunOptions[] = [];
    const ops = new DiskOps({
      uri: 'qemu:///system',
      run: hangingVirsh(seen),
      virshTimeoutMs: 1_234,
      domainXml: async () => '<domain/>',
      getState: async () => 'running',
    });
    const err = await ops.resizeDisk('mc-i-0123456789abcdef0', 'vdb', 1 << 30).catch((e) => e);
    expect(err).toBeInstanceOf(HypervisorError);
    expect((err as HypervisorError).code).toBe('LibvirtTimeout');
    expect((err as HypervisorError).message).toMatch(/resize vdb.*virsh .*domblkinfo.*timed out/);
    expect((err as HypervisorError).message).toContain('mc-i-0123456789abcdef0');
    expect(seen.map((o) => o.timeoutMs)).toEqual([1_234]);
  });
});
