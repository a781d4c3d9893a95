/**
 * The VPC world of one host as ONE nft table (family ip, e.g. mc_vpc): isolation between VPCs,
 * outbound NAT and Elastic IPs, rendered by pure functions from the model and applied atomically
 * (`nft -f`: the table is replaced in one transaction). Everything here is pure; the driver
 * applies the scripts.
 *
 *   model.ts       the model a caller gives, and the plan it is reduced to
 *   validate.ts    model -> plan (every value checked before it reaches a script)
 *   render.ts      plan -> the whole table (the sets, maps and chains are described there)
 *   eip-update.ts  Elastic IP changes -> element updates of the table's Elastic IP sets
 *   read-back.ts   nft's JSON listing -> the Elastic IP state
 */
export {
  eipMapsFromPlan,
  emptyEipMaps,
  planEipMapUpdate,
  renderEipMapUpdate,
  type EipMapUpdate,
  type EipMapsState,
  type ElasticIpChange,
} from './eip-update.js';
export type {
  ElasticIpModel,
  VpcModel,
  VpcNetworkModel,
  VpcRulesetPlan,
  VpcSubnetModel,
} from './model.js';
export { parseEipMaps } from './read-back.js';
export { renderVpcRuleset, renderVpcRulesetPlan, renderVpcRulesetRemoval } from './render.js';
export { planVpcRuleset } from './validate.js';
