import { NetworkValidationError, type NetworkValidationReason } from '@minicloud/domain';

/** The firewall's validation errors: every problem has a stable name. */

/** What was wrong (stable, for tests and for the API's mapping to EC2 codes). */
export type SecurityGroupProblem =
  | 'InvalidModel'
  | 'InvalidGroupId'
  | 'InvalidRuleId'
  | 'InvalidProtocol'
  | 'InvalidPortRange'
  | 'InvalidIcmpTypeCode'
  | 'InvalidTarget'
  | 'UnknownGroup'
  | 'UnknownBridge'
  | 'UnknownPort'
  | 'GroupVpcMismatch'
  | 'TooManyGroups'
  | 'TooManyRules'
  | 'Duplicate'
  | 'InUse';

/** A NetworkValidationError (EC2 code InvalidParameterValue) that also says what was wrong. */
export class SecurityGroupValidationError extends NetworkValidationError {
  constructor(
    readonly problem: SecurityGroupProblem,
    message: string,
    reason: NetworkValidationReason = 'InvalidNetworkSpec',
  ) {
    super(reason, message);
    this.name = 'SecurityGroupValidationError';
  }
}

export function bad(
  problem: SecurityGroupProblem,
  message: string,
  reason?: NetworkValidationReason,
): SecurityGroupValidationError {
  return new SecurityGroupValidationError(problem, message, reason);
}

/** Re-throw a NetworkValidationError from ipam/mac/naming with context, keeping its reason. */
export function withContext<T>(context: string, problem: SecurityGroupProblem, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof NetworkValidationError && !(e instanceof SecurityGroupValidationError))
      throw bad(problem, `${context}: ${e.message}`, e.reason);
    throw e;
  }
}
