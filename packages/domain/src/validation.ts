import { CloudError } from './errors.js';

/** Bad input to a pure network helper (CIDR, IP, MAC, name). The EC2 code is InvalidParameterValue. */

/** What exactly was invalid (stable, for tests and logs); the EC2 code is InvalidParameterValue. */
export type NetworkValidationReason =
  | 'InvalidIpAddress'
  | 'InvalidCidr'
  | 'InvalidMacAddress'
  | 'InvalidHostname'
  | 'InvalidInstanceId'
  | 'InvalidName'
  | 'InvalidPath'
  | 'InvalidReservation'
  | 'InvalidNetworkSpec';

/** Bad input: a malformed CIDR, IP, MAC, name or spec. Never retry. */
export class NetworkValidationError extends CloudError {
  constructor(
    readonly reason: NetworkValidationReason,
    message: string,
  ) {
    super('InvalidParameterValue', message, 400);
    this.name = 'NetworkValidationError';
  }
}

export function invalid(reason: NetworkValidationReason, message: string): NetworkValidationError {
  return new NetworkValidationError(reason, message);
}
