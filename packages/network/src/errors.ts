import { CloudError } from '@minicloud/domain';

/**
 * Errors of the network package. Both extend the domain's CloudError, so the API maps them in its
 * one middleware; callers branch on `code` / `reason`, never on message text.
 */

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

export type NetworkDriverErrorCode =
  /** A link with our name exists but is of another kind (e.g. a veth where a tap should be). */
  | 'NetworkLinkConflict'
  /** dnsmasq did not start or did not stay up. */
  | 'NetworkDhcpServerError'
  /** Anything else the host refused; `cause` carries the HostCommandError (argv, exit code, stderr). */
  | 'NetworkHostError';

/** The host did not do what we asked. Usually transient or an environment problem. */
export class NetworkDriverError extends CloudError {
  constructor(
    code: NetworkDriverErrorCode,
    message: string,
    override readonly cause?: unknown,
  ) {
    super(code, message, 500);
    this.name = 'NetworkDriverError';
  }
}

export function invalid(reason: NetworkValidationReason, message: string): NetworkValidationError {
  return new NetworkValidationError(reason, message);
}
