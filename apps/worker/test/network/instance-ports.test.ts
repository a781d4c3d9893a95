import { ensureInstanceNetwork } from '../../src/network/instance-ports.js';
import { ensureVpc } from '../../src/network/vpcs.js';
import { fakeDeps, spec, SUBNET, VPC } from './fake-deps.js';

describe('the launch path into a VPC this process has made', () => {
  test('costs no database read and no host work', async () => {
    let ensures = 0;
    const { deps, dbReads } = fakeDeps({
      ensureVpcNetwork: async () => {
        ensures++;
        return { changed: [], notes: [] };
      },
    });
    await ensureVpc(deps, VPC, spec); // what the reconciler's converge does at start
    const launches = await Promise.all(
      Array.from({ length: 10 }, () =>
        ensureInstanceNetwork(deps, { vpcId: VPC, subnetId: SUBNET }),
      ),
    );
    expect(launches.every((s) => s === spec)).toBe(true);
    expect(ensures).toBe(1);
    expect(dbReads).toEqual([]); // the fake database throws on anything else
  });
});
