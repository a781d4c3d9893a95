import { NetworkValidationError } from '@minicloud/domain';
import { HostCommandError, type RunResult } from '@minicloud/host';
import { LinuxNetworkDriver, NetworkDriverError, type VpcNetworkModel } from '@minicloud/network';
import { fakeRunner, missing } from '../fake-runner.js';

function tableJson(held: string[], dnat: [string, string][]): string {
  return JSON.stringify({
    nftables: [
      { metainfo: { version: '1.0.6' } },
      { set: { name: 'eip_held', elem: held } },
      { map: { name: 'eip_dnat', elem: dnat } },
    ],
  });
}

const conntrackOk = (n: number): Partial<RunResult> => ({
  exitCode: n ? 0 : 1,
  stderr: `conntrack v1.4.7 (conntrack-tools): ${n} flow entries have been deleted.\n`,
});

describe('LinuxNetworkDriver.updateElasticIps (scripted host)', () => {
  test('reads the table once, applies the delta, flushes both conntrack directions; then uses its own picture', async () => {
    const f = fakeRunner((cmd, args) => {
      if (cmd === 'nft' && args[0] === '-j') return { stdout: tableJson(['198.51.100.10'], []) };
      if (cmd === 'conntrack') return conntrackOk(args[1] === '--orig-dst' ? 2 : 0);
      return {};
    });
    const d = new LinuxNetworkDriver({ run: f.run });
    const r = await d.associateElasticIp({
      table: 'mc_vpc',
      publicIp: '198.51.100.10',
      privateIp: '10.1.1.5',
    });
    expect(r).toMatchObject({ changed: ['198.51.100.10'], flushedConnections: 2, notes: [] });
    expect(f.line()).toEqual([
      'nft -j list table ip mc_vpc',
      'nft -f -',
      'conntrack -D --orig-dst 198.51.100.10',
      'conntrack -D --reply-dst 198.51.100.10',
    ]);
    expect(f.calls[1]!.input).toBe(
      'add element ip mc_vpc eip_dnat { 198.51.100.10 : 10.1.1.5 }\n' +
        'add element ip mc_vpc eip_snat { 10.1.1.5 : 198.51.100.10 }\n',
    );

    f.calls.length = 0;
    await d.associateElasticIp({
      table: 'mc_vpc',
      publicIp: '198.51.100.10',
      privateIp: '10.1.1.6',
    });
    expect(f.line()[0]).toBe('nft -f -'); // no read: the driver knows what it applied
    expect(f.calls[0]!.input).toContain('delete element ip mc_vpc eip_snat { 10.1.1.5 }');

    f.calls.length = 0;
    const again = await d.associateElasticIp({
      table: 'mc_vpc',
      publicIp: '198.51.100.10',
      privateIp: '10.1.1.6',
    });
    expect(again).toMatchObject({ changed: [], applyMs: 0, conntrackMs: 0 });
    expect(f.calls).toEqual([]); // a retry of an applied change runs nothing
  });

  test('a stale picture (nft refuses): re-read and retry once', async () => {
    let applies = 0;
    let reads = 0;
    const f = fakeRunner((cmd, args) => {
      if (cmd === 'nft' && args[0] === '-j') {
        reads++;
        // first read: not held; second (after the failure): someone associated it meanwhile
        return {
          stdout:
            reads === 1
              ? tableJson([], [])
              : tableJson(['198.51.100.10'], [['198.51.100.10', '10.1.1.9']]),
        };
      }
      if (cmd === 'nft' && args[0] === '-f') {
        applies++;
        if (applies === 2) return new HostCommandError('nft', args, 1, 'Error: File exists', false);
        return {};
      }
      if (cmd === 'conntrack') return conntrackOk(0);
      return {};
    });
    const d = new LinuxNetworkDriver({ run: f.run });
    await d.updateElasticIps('mc_vpc', [{ publicIp: '198.51.100.10' }]); // read 1, apply 1
    // A cold driver would now read; this one trusts its picture, which another process changed.
    await d.associateElasticIp({
      table: 'mc_vpc',
      publicIp: '198.51.100.10',
      privateIp: '10.1.1.5',
    });
    expect(applies).toBe(3);
    expect(reads).toBe(2);
    expect(f.calls.filter((c) => c.args[0] === '-f').at(-1)!.input).toBe(
      'delete element ip mc_vpc eip_dnat { 198.51.100.10 }\n' +
        'delete element ip mc_vpc eip_snat { 10.1.1.9 }\n' +
        'add element ip mc_vpc eip_dnat { 198.51.100.10 : 10.1.1.5 }\n' +
        'add element ip mc_vpc eip_snat { 10.1.1.5 : 198.51.100.10 }\n',
    );
  });

  test('no table yet: a driver error that says to apply the ruleset first', async () => {
    const f = fakeRunner((cmd) =>
      cmd === 'nft'
        ? { exitCode: 1, stderr: 'Error: No such file or directory; did you mean table ...' }
        : {},
    );
    const d = new LinuxNetworkDriver({
      run: (c, a, o) => f.run(c, a, { ...o, okExitCodes: [1] }),
    });
    await expect(
      d.associateElasticIp({ table: 'mc_vpc', publicIp: '198.51.100.10', privateIp: '10.1.1.5' }),
    ).rejects.toThrow(/apply the whole VPC ruleset first/);
  });

  test('bad input is refused before anything runs', async () => {
    const f = fakeRunner(() => ({}));
    const d = new LinuxNetworkDriver({ run: f.run });
    await expect(
      d.associateElasticIp({ table: 'mc_vpc', publicIp: '198.51.100.256', privateIp: '10.1.1.5' }),
    ).rejects.toBeInstanceOf(NetworkValidationError);
    await expect(d.updateElasticIps('mc vpc', [])).rejects.toBeInstanceOf(NetworkValidationError);
    expect(f.calls).toEqual([]);
  });

  test('conntrack not installed: a note, once, and no more attempts', async () => {
    const f = fakeRunner((cmd, args) => {
      if (cmd === 'nft' && args[0] === '-j') return { stdout: tableJson(['198.51.100.10'], []) };
      if (cmd === 'conntrack') return missing('conntrack');
      return {};
    });
    const d = new LinuxNetworkDriver({ run: f.run });
    const r = await d.associateElasticIp({
      table: 'mc_vpc',
      publicIp: '198.51.100.10',
      privateIp: '10.1.1.5',
    });
    expect(r.notes).toEqual([expect.stringMatching(/Debian package conntrack/)]);
    f.calls.length = 0;
    const r2 = await d.disassociateElasticIp({ table: 'mc_vpc', publicIp: '198.51.100.10' });
    expect(r2.notes).toHaveLength(1);
    expect(f.line()).toEqual(['nft -f -']);
  });

  test('an entry that vanished between dump and delete is fine', async () => {
    const f = fakeRunner((cmd, args) => {
      if (cmd === 'nft' && args[0] === '-j') return { stdout: tableJson(['198.51.100.10'], []) };
      if (cmd === 'conntrack')
        return {
          exitCode: 1,
          stderr:
            "conntrack v1.4.7 (conntrack-tools): Operation failed: such conntrack doesn't exist\n",
        };
      return {};
    });
    const d = new LinuxNetworkDriver({ run: f.run });
    await expect(
      d.associateElasticIp({ table: 'mc_vpc', publicIp: '198.51.100.10', privateIp: '10.1.1.5' }),
    ).resolves.toMatchObject({ flushedConnections: 0 });
  });
});

describe('LinuxNetworkDriver.applyVpcRuleset (scripted host)', () => {
  const model: VpcNetworkModel = {
    table: 'mc_vpc',
    uplink: 'eth0',
    vpcs: [
      {
        vpcId: 'vpc-0a0a0a0a0a0a0a0a0',
        bridge: 'mcv0a0a0a0a0',
        cidr: '10.1.0.0/16',
        subnets: [
          { subnetId: 'subnet-0a0000000000000a1', cidr: '10.1.1.0/24', gatewayIp: '10.1.1.1' },
        ],
        internetGateway: true,
      },
    ],
    elasticIps: [
      { publicIp: '198.51.100.10', privateIp: '10.1.1.5', vpcId: 'vpc-0a0a0a0a0a0a0a0a0' },
    ],
  };

  test('applies the whole table in one nft -f and flushes only what changed', async () => {
    const f = fakeRunner((cmd, args) => {
      if (cmd === 'nft' && args[0] === '-j')
        return {
          stdout: tableJson(
            ['198.51.100.10', '198.51.100.11'],
            [
              ['198.51.100.10', '10.1.1.5'],
              ['198.51.100.11', '10.1.1.6'],
            ],
          ),
        };
      if (cmd === 'conntrack') return conntrackOk(1);
      return {};
    });
    const d = new LinuxNetworkDriver({ run: f.run, sysRoot: '/nonexistent' });
    const r = await d.applyVpcRuleset(model);
    expect(r.changedElasticIps).toEqual(['198.51.100.11']); // gone from the model
    expect(r.notes).toEqual(['uplink eth0 does not exist (yet): no outside traffic until it does']);
    expect(f.line()).toEqual([
      'nft -j list table ip mc_vpc',
      'nft -f -',
      'conntrack -D --orig-dst 198.51.100.11',
      'conntrack -D --reply-dst 198.51.100.11',
    ]);
    expect(f.calls[1]!.input).toMatch(/^table ip mc_vpc \{\}\ndelete table ip mc_vpc\n/);
    f.calls.length = 0;
    expect((await d.applyVpcRuleset(model)).changedElasticIps).toEqual([]);
    expect(f.line()).toEqual(['nft -f -']);
  });

  test('nft refusing the script is a driver error carrying the cause', async () => {
    const f = fakeRunner((cmd, args) =>
      args[0] === '-f'
        ? new HostCommandError('nft', args, 1, 'Error: syntax error', false)
        : { stdout: tableJson([], []) },
    );
    const d = new LinuxNetworkDriver({ run: f.run });
    await expect(d.applyVpcRuleset(model, { flushConntrack: false })).rejects.toBeInstanceOf(
      NetworkDriverError,
    );
  });
});
