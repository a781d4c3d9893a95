import { join } from 'node:path';
import { defaultGateway, parseCidr, vpcBridgeName } from '@minicloud/domain';
import type { VpcWithSubnets } from '@minicloud/db';
import type { VpcModel, VpcNetworkSpec } from '@minicloud/network';
import type { WorkerSettings } from '../context.js';

/** VPC ids as the host may name things after them. */
export const VPC_ID_RE = /^vpc-[0-9a-f]{17}$/;

/** One VPC as the host sees it: bridge, router address (first host) per subnet, state dir. */
export function vpcNetworkSpec(
  settings: Pick<WorkerSettings, 'prefix' | 'networksDir'>,
  vpc: VpcWithSubnets,
): VpcNetworkSpec {
  const subnets = [...vpc.subnets]
    .map((s) => ({ s, n: parseCidr(s.cidrBlock).networkInt }))
    .sort((a, b) => a.n - b.n) // a stable order: dnsmasq's arguments never change by accident
    .map(({ s }) => ({
      subnetId: s.id,
      cidr: s.cidrBlock,
      gatewayIp: defaultGateway(s.cidrBlock),
    }));
  return {
    bridge: vpcBridgeName(settings.prefix, vpc.id),
    cidr: vpc.cidrBlock,
    subnets,
    stateDir: join(settings.networksDir, vpc.id),
  };
}

/** The VPC as the ruleset model knows it. */
export function vpcModel(vpcId: string, spec: VpcNetworkSpec, internetGateway: boolean): VpcModel {
  return {
    vpcId,
    bridge: spec.bridge,
    cidr: spec.cidr,
    subnets: spec.subnets.map((s) => ({
      subnetId: s.subnetId!,
      cidr: s.cidr,
      gatewayIp: s.gatewayIp,
    })),
    internetGateway,
  };
}
