/**
 * EC2 security groups of one host as ONE nft transaction over two tables, rendered by pure
 * functions from the model:
 *
 *   inet   <prefix>_sg    stateful filtering (conntrack exists only in inet/ip here)
 *   bridge <prefix>_sgb   stateless per-port anti-spoofing (the bridge family has no conntrack)
 *
 * Both are replaced atomically by renderSecurityGroups (one `nft -f`), and changed in small
 * element/chain updates by planSecurityGroupUpdate (a launch, a terminate, "change an instance's
 * groups", a rule change). Everything here is pure; the driver applies the scripts.
 *
 *   names.ts      table, set and chain names; group and rule ids
 *   model.ts      the model a caller gives, and the plan it is normalised into
 *   validate.ts   model -> plan (every value checked before it reaches a script)
 *   elements.ts   the set and map elements of a state (written in full, or diffed)
 *   render.ts     plan -> the whole ruleset (the table layout is described there)
 *   state.ts      what incremental updates need to know of the applied tables
 *   update.ts     state + changes -> the small transaction and the next state
 *   read-back.ts  nft's JSON listing -> state
 */
export { SecurityGroupValidationError, type SecurityGroupProblem } from './errors.js';
export {
  SG_MAX_GROUPS_PER_PORT,
  SG_MAX_RULES_PER_DIRECTION,
  type SecurityGroupBridgeModel,
  type SecurityGroupHostService,
  type SecurityGroupModel,
  type SecurityGroupNetworkModel,
  type SecurityGroupPlan,
  type SecurityGroupPlanBridge,
  type SecurityGroupPlanGroup,
  type SecurityGroupPlanPort,
  type SecurityGroupPortModel,
  type SecurityGroupProtocol,
  type SecurityGroupRuleModel,
} from './model.js';
export {
  assertSecurityGroupId,
  assertSecurityGroupRuleId,
  sgBridgeTableName,
  sgComboChainName,
  sgGroupChainName,
  sgGroupSetName,
  sgTableName,
} from './names.js';
export { parseSecurityGroupState } from './read-back.js';
export {
  renderSecurityGroupPlan,
  renderSecurityGroupRemoval,
  renderSecurityGroups,
} from './render.js';
export { securityGroupStateFromPlan, type SecurityGroupState } from './state.js';
export {
  planSecurityGroupUpdate,
  renderSecurityGroupUpdate,
  type SecurityGroupChanges,
  type SecurityGroupMembershipChange,
  type SecurityGroupUpdate,
} from './update.js';
export { planSecurityGroups } from './validate.js';
