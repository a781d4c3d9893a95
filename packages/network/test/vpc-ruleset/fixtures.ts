import type { VpcNetworkModel } from '@minicloud/network';

/** The model the VPC table tests start from. */

export const VPC_A = 'vpc-0a0a0a0a0a0a0a0a0';
export const VPC_B = 'vpc-0b0b0b0b0b0b0b0b0';
export const VPC_C = 'vpc-0c0c0c0c0c0c0c0c0';

export function model(over: Partial<VpcNetworkModel> = {}): VpcNetworkModel {
  return {
    table: 'mc_vpc',
    uplink: 'eth0',
    vpcs: [
      {
        vpcId: VPC_B,
        bridge: 'mcv0b0b0b0b0',
        cidr: '10.2.0.0/16',
        subnets: [
          { subnetId: 'subnet-0b0000000000000b1', cidr: '10.2.0.0/24', gatewayIp: '10.2.0.1' },
        ],
        internetGateway: false,
      },
      {
        vpcId: VPC_A,
        bridge: 'mcv0a0a0a0a0',
        cidr: '10.1.0.0/16',
        subnets: [
          { subnetId: 'subnet-0a0000000000000a2', cidr: '10.1.2.0/24', gatewayIp: '10.1.2.1' },
          { subnetId: 'subnet-0a0000000000000a1', cidr: '10.1.1.0/24', gatewayIp: '10.1.1.1' },
        ],
        internetGateway: true,
      },
    ],
    elasticIps: [
      { publicIp: '198.51.100.11', privateIp: null },
      { publicIp: '198.51.100.12', privateIp: '10.2.0.5', vpcId: VPC_B },
      { publicIp: '198.51.100.10', privateIp: '10.1.1.5', vpcId: VPC_A },
      { publicIp: '198.51.100.9', privateIp: '10.1.2.7', vpcId: VPC_A },
    ],
    ...over,
  };
}
