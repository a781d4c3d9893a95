import { assertNamePrefix } from '@minicloud/domain';
import { bad } from './errors.js';

/** The names of the firewall's tables, sets and chains, and the ids they are derived from. */

const GROUP_ID_RE = /^sg-[0-9a-f]{17}$/;
const RULE_ID_RE = /^sgr-[0-9a-f]{17}$/;
/** The inverse of sgGroupSetName (capture: the group's 17 hex). */
export const GROUP_SET_RE = /^sg_([0-9a-f]{17})$/;
/** The inverse of sgComboChainName (captures: the groups' hexes joined by _, the direction). */
export const COMBO_CHAIN_RE = /^c_((?:[0-9a-f]{17})(?:_[0-9a-f]{17}){0,4})_(in|out)$/;
/** The inverse of sgGroupChainName (captures: the group's 17 hex, the direction). */
export const GROUP_CHAIN_RE = /^g_([0-9a-f]{17})_(in|out)$/;

/** The stateful filter table (family inet). */
export function sgTableName(prefix: string): string {
  return `${assertNamePrefix(prefix)}_sg`;
}

/** The anti-spoofing table (family bridge). */
export function sgBridgeTableName(prefix: string): string {
  return `${assertNamePrefix(prefix)}_sgb`;
}

export function assertSecurityGroupId(groupId: string, what = 'security group id'): string {
  if (typeof groupId !== 'string' || !GROUP_ID_RE.test(groupId))
    throw bad('InvalidGroupId', `invalid ${what} ${JSON.stringify(groupId)} (sg- + 17 hex)`);
  return groupId;
}

export function assertSecurityGroupRuleId(ruleId: string): string {
  if (typeof ruleId !== 'string' || !RULE_ID_RE.test(ruleId))
    throw bad(
      'InvalidRuleId',
      `invalid security group rule id ${JSON.stringify(ruleId)} (sgr- + 17 hex)`,
    );
  return ruleId;
}

/** The member set of a group: sg_<17 hex>. */
export function sgGroupSetName(groupId: string): string {
  return `sg_${assertSecurityGroupId(groupId).slice(3)}`;
}

/** The rule chain of a group in one direction: g_<17 hex>_in / _out. */
export function sgGroupChainName(groupId: string, direction: 'in' | 'out'): string {
  return `g_${assertSecurityGroupId(groupId).slice(3)}_${direction}`;
}

/** The dispatch chain of a combination of groups: c_<hex>_<hex>..._in / _out (ids sorted). */
export function sgComboChainName(groupIds: readonly string[], direction: 'in' | 'out'): string {
  const hexes = [...groupIds].map((g) => assertSecurityGroupId(g).slice(3)).sort();
  return `c_${hexes.join('_')}_${direction}`;
}
