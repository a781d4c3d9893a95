/** One base error with an EC2-like code; the API maps it to an HTTP status in one place. */
export class CloudError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status = 400,
  ) {
    super(message);
    this.name = 'CloudError';
  }
}

export const errors = {
  invalidParameter: (message: string) => new CloudError('InvalidParameterValue', message),
  missingParameter: (message: string) => new CloudError('MissingParameter', message),
  notFound: (code: string, message: string) => new CloudError(code, message, 404),
  incorrectState: (message: string) => new CloudError('IncorrectInstanceState', message, 409),
  duplicate: (code: string, message: string) => new CloudError(code, message, 409),
  idempotentMismatch: () =>
    new CloudError(
      'IdempotentParameterMismatch',
      'The client token was already used with different parameters.',
      409,
    ),
  dependency: (message: string) => new CloudError('DependencyViolation', message, 409),
  unauthorized: () =>
    new CloudError('AuthFailure', 'A valid "Authorization: Bearer <key>" header is required.', 401),
  insufficientCapacity: (code: string, message: string) => new CloudError(code, message, 409),
  /** A dependency (Redis, the database) is down or not answering: try again later. */
  serviceUnavailable: (message: string) => new CloudError('ServiceUnavailable', message, 503),
};
