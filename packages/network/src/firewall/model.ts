/**
 * What the firewall is rendered from: the model a caller gives (groups, their rules, ports,
 * bridges, host services) and the plan it is validated and normalised into (validate.ts).
 */

export const SG_MAX_GROUPS_PER_PORT = 5;
/** Per direction, as EC2 (60 inbound and 60 outbound rules per group). */
export const SG_MAX_RULES_PER_DIRECTION = 60;

export type SecurityGroupProtocol = 'tcp' | 'udp' | 'icmp' | '-1';

export interface SecurityGroupRuleModel {
  /** sgr- + 17 hex. */
  ruleId: string;
  ipProtocol: SecurityGroupProtocol;
  /** tcp/udp: first port (0-65535); icmp: type (-1 = any); '-1': absent, null or -1. */
  fromPort?: number | null;
  /** tcp/udp: last port; icmp: code (-1 = any); '-1': absent, null or -1. */
  toPort?: number | null;
  /** Exactly one of cidr (IPv4, e.g. '10.0.0.0/16') and referencedGroupId. */
  cidr?: string | null;
  /** "Any instance in that group" (sg- + 17 hex; must be in the model and in the same VPC). */
  referencedGroupId?: string | null;
}

export interface SecurityGroupModel {
  /** sg- + 17 hex. */
  groupId: string;
  vpcId: string;
  /** Allow rules for inbound traffic (source = cidr or group). */
  ingress: readonly SecurityGroupRuleModel[];
  /** Allow rules for outbound traffic (destination = cidr or group). */
  egress: readonly SecurityGroupRuleModel[];
}

/** One instance NIC (tap) and its groups. */
export interface SecurityGroupPortModel {
  tap: string;
  /** The bridge the tap is attached to (must be in the model's bridges). */
  bridge: string;
  /** The guest's MAC (not the tap's own fe:... MAC). */
  mac: string;
  ip: string;
  /** 1 to 5 groups, all in the bridge's VPC. */
  groupIds: readonly string[];
}

export interface SecurityGroupBridgeModel {
  bridge: string;
  vpcId: string;
  /** The host's addresses on the bridge (each subnet's router): DHCP, DNS, services. */
  routerIps: readonly string[];
}

export interface SecurityGroupHostService {
  protocol: 'tcp' | 'udp';
  port: number;
  /** A specific host address (e.g. a metadata address held on the host); absent: router addresses. */
  address?: string | null;
}

export interface SecurityGroupNetworkModel {
  /** The deployment's name prefix: tables <prefix>_sg (inet) and <prefix>_sgb (bridge). */
  prefix: string;
  /**
   * Interfaces whose name starts with this are guest ports: one that is not in `ports` gets
   * nothing through (launch order: port in the model before the guest starts). Default
   * <prefix>t (the tap naming of tapName); null: only listed ports are checked.
   */
  tapPrefix?: string | null;
  bridges: readonly SecurityGroupBridgeModel[];
  groups: readonly SecurityGroupModel[];
  ports: readonly SecurityGroupPortModel[];
  hostServices?: readonly SecurityGroupHostService[];
  /** Answer ping on router addresses (default false: like EC2, the router is silent). */
  allowRouterPing?: boolean;
}

export interface SecurityGroupPlanGroup {
  groupId: string;
  vpcId: string;
  /** Rendered rules of g_<hex>_in / g_<hex>_out. */
  ingress: string[];
  egress: string[];
  /** Groups its rules reference (sorted). */
  refs: string[];
  /** Member addresses (sorted), from the ports. */
  members: string[];
}

export interface SecurityGroupPlanPort {
  tap: string;
  bridge: string;
  mac: string;
  ip: string;
  /** Sorted. */
  groupIds: string[];
}

export interface SecurityGroupPlanBridge {
  bridge: string;
  vpcId: string;
  /** Sorted by address. */
  routerIps: string[];
}

/** The model validated, normalised and sorted (what the script is rendered from). */
export interface SecurityGroupPlan {
  prefix: string;
  inetTable: string;
  bridgeTable: string;
  tapPrefix: string | null;
  bridges: SecurityGroupPlanBridge[];
  /** (protocol, port) reachable on router addresses. */
  routerServices: [protocol: string, port: number][];
  /** (address, protocol, port). */
  hostServices: [address: string, protocol: string, port: number][];
  allowRouterPing: boolean;
  groups: SecurityGroupPlanGroup[];
  ports: SecurityGroupPlanPort[];
  /** Distinct group combinations of the ports (each sorted), sorted by chain name. */
  combos: string[][];
  ruleCount: number;
}
