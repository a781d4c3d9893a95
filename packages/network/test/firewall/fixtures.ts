import { NetworkValidationError } from '@minicloud/domain';
import {
  SecurityGroupValidationError,
  type SecurityGroupNetworkModel,
  type SecurityGroupProblem,
} from '@minicloud/network';

/** The model the firewall tests start from, and how they read a validation error. */

export const VPC_A = 'vpc-0a0a0a0a0a0a0a0a0';
export const VPC_B = 'vpc-0b0b0b0b0b0b0b0b0';
export const WEB = 'sg-0000000000000000a';
export const APP = 'sg-0000000000000000b';
export const DEF = 'sg-0000000000000000c';
export const OTHER = 'sg-0000000000000000d'; // VPC B
export const BR_A = 'mcv0a0a0a0a0';
export const BR_B = 'mcv0b0b0b0b0';

let ruleSeq = 0x1000;
export function rid(): string {
  return `sgr-${(++ruleSeq).toString(16).padStart(17, '0')}`;
}

export function model(over: Partial<SecurityGroupNetworkModel> = {}): SecurityGroupNetworkModel {
  return {
    prefix: 'mc',
    bridges: [
      { bridge: BR_B, vpcId: VPC_B, routerIps: ['10.2.0.1'] },
      { bridge: BR_A, vpcId: VPC_A, routerIps: ['10.1.2.1', '10.1.1.1'] },
    ],
    groups: [
      {
        groupId: WEB,
        vpcId: VPC_A,
        ingress: [
          {
            ruleId: 'sgr-00000000000000001',
            ipProtocol: 'tcp',
            fromPort: 22,
            toPort: 22,
            cidr: '10.1.1.16/28',
          },
          {
            ruleId: 'sgr-00000000000000002',
            ipProtocol: 'icmp',
            fromPort: 8,
            toPort: -1,
            cidr: '10.1.1.16/28',
          },
          {
            ruleId: 'sgr-00000000000000003',
            ipProtocol: 'tcp',
            fromPort: 8080,
            toPort: 8080,
            referencedGroupId: APP,
          },
        ],
        egress: [{ ruleId: 'sgr-00000000000000004', ipProtocol: '-1', cidr: '0.0.0.0/0' }],
      },
      {
        groupId: APP,
        vpcId: VPC_A,
        ingress: [],
        egress: [{ ruleId: 'sgr-00000000000000005', ipProtocol: '-1', cidr: '0.0.0.0/0' }],
      },
      {
        groupId: DEF,
        vpcId: VPC_A,
        ingress: [{ ruleId: 'sgr-00000000000000006', ipProtocol: '-1', referencedGroupId: DEF }],
        egress: [{ ruleId: 'sgr-00000000000000007', ipProtocol: '-1', cidr: '0.0.0.0/0' }],
      },
      {
        groupId: OTHER,
        vpcId: VPC_B,
        ingress: [],
        egress: [
          {
            ruleId: 'sgr-00000000000000008',
            ipProtocol: 'udp',
            fromPort: 53,
            toPort: 53,
            cidr: '10.2.0.0/16',
          },
        ],
      },
    ],
    ports: [
      {
        tap: 'mct00000000b',
        bridge: BR_A,
        mac: '52:54:00:00:00:0B',
        ip: '10.1.1.20',
        groupIds: [APP, DEF],
      },
      {
        tap: 'mct00000000a',
        bridge: BR_A,
        mac: '52:54:00:00:00:0a',
        ip: '10.1.1.10',
        groupIds: [WEB],
      },
      {
        tap: 'mct00000000c',
        bridge: BR_A,
        mac: '52:54:00:00:00:0c',
        ip: '10.1.2.30',
        groupIds: [DEF, APP],
      },
      {
        tap: 'mct00000000d',
        bridge: BR_B,
        mac: '52:54:00:00:00:0d',
        ip: '10.2.0.40',
        groupIds: [OTHER],
      },
    ],
    hostServices: [
      { protocol: 'tcp', port: 80, address: '169.254.169.254' },
      { protocol: 'tcp', port: 8775 },
    ],
    ...over,
  };
}

export function problemOf(fn: () => unknown): SecurityGroupProblem | string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(NetworkValidationError);
    expect((e as NetworkValidationError).code).toBe('InvalidParameterValue');
    // Errors of the address/name helpers are wrapped with context but keep their reason.
    const reason = (e as NetworkValidationError).reason;
    return e instanceof SecurityGroupValidationError && reason === 'InvalidNetworkSpec'
      ? e.problem
      : reason;
  }
  throw new Error('expected a validation error');
}
