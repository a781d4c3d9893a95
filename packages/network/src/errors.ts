import { CloudError } from '@minicloud/domain';

/**
 * Errors of the network package. Both extend the domain's CloudError, so the API maps them in its
 * one middleware; callers branch on `code` / `reason`, never on message text.
 */

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
