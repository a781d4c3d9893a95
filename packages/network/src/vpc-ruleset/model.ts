/**
 * What the VPC table is rendered from: the model a caller gives (VPCs, their subnets, Elastic
 * IPs) and the plan it is validated and reduced to (validate.ts).
 */

export interface VpcSubnetModel {
  /** subnet- + 17 hex (used in messages only). */
  subnetId: string;
  cidr: string;
  /** The host's (router's) address in the subnet, e.g. .1. */
  gatewayIp: string;
}

export interface VpcModel {
  vpcId: string;
  /** The VPC's bridge (see vpcBridgeName). */
  bridge: string;
  cidr: string;
  subnets: readonly VpcSubnetModel[];
  /** An internet gateway is attached: outbound NAT and Elastic IPs work. */
  internetGateway: boolean;
}

export interface ElasticIpModel {
  publicIp: string;
  /** The associated instance's private address, or null when allocated but not associated. */
  privateIp: string | null;
  /** The VPC of privateIp (required when privateIp is set). */
  vpcId?: string | null;
}

export interface VpcNetworkModel {
  /** nft table (family ip), see vpcTableName. */
  table: string;
  /** The host's interface to the outside (where Elastic IPs live), or null. */
  uplink: string | null;
  vpcs: readonly VpcModel[];
  /** Every allocated Elastic IP of this host, associated or not. */
  elasticIps: readonly ElasticIpModel[];
}

/** The model reduced to set and map contents, sorted (what the ruleset is rendered from). */
export interface VpcRulesetPlan {
  table: string;
  uplink: string | null;
  bridges: string[];
  igwBridges: string[];
  vpcNets: [bridge: string, cidr: string][];
  igwNets: string[];
  routerAddrs: [bridge: string, ip: string][];
  eipHeld: string[];
  /** public -> private, active associations only. */
  eipDnat: [publicIp: string, privateIp: string][];
  /** Things the operator should know (inactive Elastic IPs, an IGW without uplink). */
  notes: string[];
}
