import { syncVpcReservations } from '../../src/network/reservations.js';
import { fakeDeps, leaseRow, spec, VPC } from './fake-deps.js';

/**
 * The worker reads a VPC's reservations and hands the full set to the driver, one run at a time
 * per VPC; calls made during a run share the next run (which reads after their commits).
 */
describe('syncVpcReservations', () => {
  test('a row committed during a load is not lost', async () => {
    const db = [leaseRow(1)];
    let loads = 0;
    const { deps, applied } = fakeDeps({
      leases: async () => {
        loads++;
        const snapshot = [...db];
        await new Promise((r) => setTimeout(r, 20)); // a slow query
        return snapshot;
      },
    });
    const first = syncVpcReservations(deps, VPC, spec);
    await new Promise((r) => setTimeout(r, 5)); // first run is loading now
    db.push(leaseRow(2), leaseRow(3)); // two launches commit their rows...
    const second = syncVpcReservations(deps, VPC, spec); // ...and sync: queued behind the load
    const third = syncVpcReservations(deps, VPC, spec); // joins the queued run
    expect(third).toBe(second);
    await Promise.all([first, second, third]);
    expect(loads).toBe(2);
    expect(applied.at(-1)).toHaveLength(3);
  });

  test('30 concurrent callers share a few loads; the last set written has every row', async () => {
    let loads = 0;
    const db: ReturnType<typeof leaseRow>[] = [];
    const { deps, applied } = fakeDeps({
      leases: async () => {
        loads++;
        return [...db];
      },
    });
    await Promise.all(
      Array.from({ length: 30 }, async (_, i) => {
        db.push(leaseRow(i + 1));
        await syncVpcReservations(deps, VPC, spec);
      }),
    );
    expect(loads).toBeLessThanOrEqual(2);
    expect(applied.length).toBeLessThanOrEqual(2);
    expect(applied.at(-1)).toHaveLength(30);
  });

  test('hostnames follow the address; a lease outside every subnet is left out and logged', async () => {
    const bad = { ...leaseRow(9), ip: '10.99.0.5' };
    const { deps, applied, logs } = fakeDeps({ leases: async () => [leaseRow(1), bad] });
    await syncVpcReservations(deps, VPC, spec);
    expect(applied).toEqual([
      [{ mac: '52:54:00:00:00:01', ip: '10.11.0.11', hostname: 'ip-10-11-0-11' }],
    ]);
    expect(logs).toEqual([expect.stringContaining('10.99.0.5 is in no subnet')]);
  });
});
