import { NetworkValidationError } from '@minicloud/domain';
import { planVpcRuleset, renderVpcRuleset, type VpcNetworkModel } from '@minicloud/network';
import { VPC_A, VPC_B, VPC_C, model } from './fixtures.js';

describe('renderVpcRuleset', () => {
  test('notes say which Elastic IPs are inactive and why', () => {
    expect(planVpcRuleset(model()).notes).toEqual([
      `Elastic IP 198.51.100.12 -> 10.2.0.5 is inactive: ${VPC_B} has no internet gateway`,
    ]);
  });

  const bad: [string, (m: VpcNetworkModel) => VpcNetworkModel][] = [
    ['bad table name', (m) => ({ ...m, table: 'mc-vpc' })],
    ['table injection', (m) => ({ ...m, table: 'mc_vpc; flush ruleset' })],
    ['uplink injection', (m) => ({ ...m, uplink: 'eth0" accept' })],
    ['uplink is a VPC bridge', (m) => ({ ...m, uplink: 'mcv0a0a0a0a0' })],
    ['bad vpc id', (m) => ({ ...m, vpcs: [{ ...m.vpcs[0]!, vpcId: 'vpc-1' }] })],
    ['vpc twice', (m) => ({ ...m, vpcs: [m.vpcs[0]!, { ...m.vpcs[0]!, bridge: 'mcvx' }] })],
    [
      'bridge twice',
      (m) => ({ ...m, vpcs: [m.vpcs[0]!, { ...m.vpcs[1]!, bridge: m.vpcs[0]!.bridge }] }),
    ],
    ['bridge injection', (m) => ({ ...m, vpcs: [{ ...m.vpcs[0]!, bridge: 'mc" accept' }] })],
    [
      'overlapping VPCs',
      (m) => ({
        ...m,
        vpcs: [m.vpcs[0]!, { ...m.vpcs[1]!, cidr: '10.2.128.0/17', subnets: [] }],
        elasticIps: [],
      }),
    ],
    ['malformed VPC CIDR', (m) => ({ ...m, vpcs: [{ ...m.vpcs[0]!, cidr: '10.2.0.1/16' }] })],
    [
      'subnet outside its VPC',
      (m) => ({
        ...m,
        vpcs: [
          {
            ...m.vpcs[0]!,
            subnets: [
              { subnetId: 'subnet-0b0000000000000b1', cidr: '10.3.0.0/24', gatewayIp: '10.3.0.1' },
            ],
          },
        ],
        elasticIps: [],
      }),
    ],
    [
      'overlapping subnets',
      (m) => ({
        ...m,
        vpcs: [
          {
            ...m.vpcs[1]!,
            subnets: [
              { subnetId: 'subnet-0a0000000000000a1', cidr: '10.1.0.0/23', gatewayIp: '10.1.0.1' },
              { subnetId: 'subnet-0a0000000000000a2', cidr: '10.1.1.0/24', gatewayIp: '10.1.1.1' },
            ],
          },
        ],
        elasticIps: [],
      }),
    ],
    [
      'gateway outside its subnet',
      (m) => ({
        ...m,
        vpcs: [
          {
            ...m.vpcs[0]!,
            subnets: [
              { subnetId: 'subnet-0b0000000000000b1', cidr: '10.2.0.0/24', gatewayIp: '10.2.1.1' },
            ],
          },
        ],
        elasticIps: [],
      }),
    ],
    [
      'subnet id twice',
      (m) => ({
        ...m,
        vpcs: [
          m.vpcs[0]!,
          {
            ...m.vpcs[1]!,
            subnets: [{ ...m.vpcs[1]!.subnets[0]!, subnetId: 'subnet-0b0000000000000b1' }],
          },
        ],
        elasticIps: [],
      }),
    ],
    [
      'Elastic IP twice',
      (m) => ({
        ...m,
        elasticIps: [...m.elasticIps, { publicIp: '198.51.100.11', privateIp: null }],
      }),
    ],
    [
      'Elastic IP inside a VPC',
      (m) => ({ ...m, elasticIps: [{ publicIp: '10.1.200.1', privateIp: null }] }),
    ],
    [
      'malformed Elastic IP',
      (m) => ({ ...m, elasticIps: [{ publicIp: '198.51.100.256', privateIp: null }] }),
    ],
    [
      'one private address, two Elastic IPs',
      (m) => ({
        ...m,
        elasticIps: [
          ...m.elasticIps,
          { publicIp: '198.51.100.20', privateIp: '10.1.1.5', vpcId: VPC_A },
        ],
      }),
    ],
    [
      'associated without vpcId',
      (m) => ({ ...m, elasticIps: [{ publicIp: '198.51.100.20', privateIp: '10.1.1.5' }] }),
    ],
    [
      'unknown VPC',
      (m) => ({
        ...m,
        elasticIps: [{ publicIp: '198.51.100.20', privateIp: '10.1.1.5', vpcId: VPC_C }],
      }),
    ],
    [
      'private address outside every subnet of the VPC',
      (m) => ({
        ...m,
        elasticIps: [{ publicIp: '198.51.100.20', privateIp: '10.1.3.5', vpcId: VPC_A }],
      }),
    ],
    [
      'private address in another VPC',
      (m) => ({
        ...m,
        elasticIps: [{ publicIp: '198.51.100.20', privateIp: '10.2.0.5', vpcId: VPC_A }],
      }),
    ],
    [
      'private address is a router',
      (m) => ({
        ...m,
        elasticIps: [{ publicIp: '198.51.100.20', privateIp: '10.1.1.1', vpcId: VPC_A }],
      }),
    ],
  ];
  test.each(bad)('refused: %s', (_what, change) => {
    expect(() => renderVpcRuleset(change(model()))).toThrow(NetworkValidationError);
  });

  test('VPCs that only touch do not overlap', () => {
    const m = model({
      vpcs: [
        { ...model().vpcs[0]!, cidr: '10.2.0.0/16' },
        { ...model().vpcs[1]!, cidr: '10.1.0.0/16' },
      ],
    });
    expect(() => renderVpcRuleset(m)).not.toThrow();
  });
});
