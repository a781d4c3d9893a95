import type { SecurityGroupPlan, SecurityGroupPlanPort } from './model.js';

/**
 * What incremental updates need to know of the applied tables: bridges, groups (VPC and the
 * groups their rules reference, not the rules themselves) and ports. Kept by the driver after
 * each apply, and readable back from nft (parseSecurityGroupState).
 */
export interface SecurityGroupState {
  prefix: string;
  bridges: ReadonlyMap<string, { vpcId: string; routerIps: readonly string[] }>;
  groups: ReadonlyMap<string, { vpcId: string; refs: readonly string[] }>;
  ports: ReadonlyMap<string, SecurityGroupPlanPort>;
}

export function securityGroupStateFromPlan(plan: SecurityGroupPlan): SecurityGroupState {
  return {
    prefix: plan.prefix,
    bridges: new Map(
      plan.bridges.map((b) => [b.bridge, { vpcId: b.vpcId, routerIps: b.routerIps }]),
    ),
    groups: new Map(plan.groups.map((g) => [g.groupId, { vpcId: g.vpcId, refs: g.refs }])),
    ports: new Map(plan.ports.map((p) => [p.tap, p])),
  };
}
