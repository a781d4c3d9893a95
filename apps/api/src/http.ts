import type { NextFunction, Request, Response } from 'express';
import { timingSafeEqual, createHash } from 'node:crypto';
import { z } from 'zod';
import { CloudError, errors } from '@minicloud/domain';
import { isDatabaseBusy, isDatabaseUnavailable } from '@minicloud/db';
import { QueueUnavailableError, type JobQueue } from '@minicloud/queue';

/** Parse a request part with a zod schema; failures become InvalidParameterValue (400). */
export function parse<T extends z.ZodType>(schema: T, value: unknown): z.infer<T> {
  const result = schema.safeParse(value ?? {});
  if (!result.success) {
    const issue = result.error.issues[0];
    const where = issue?.path.length ? `${issue.path.join('.')}: ` : '';
    const missing = issue?.code === 'invalid_type' && /received undefined/.test(issue.message);
    const code = missing ? 'MissingParameter' : 'InvalidParameterValue';
    throw new CloudError(code, `${where}${issue?.message ?? 'invalid request'}`);
  }
  return result.data;
}

/**
 * A request body must be JSON. express.json() skips other content types and leaves no body, which
 * a route would read as {} (for some routes a valid request): refuse them instead, 415.
 */
export function jsonBodiesOnly(req: Request, _res: Response, next: NextFunction) {
  const length = req.get('content-length');
  const hasBody =
    req.get('transfer-encoding') !== undefined || (length !== undefined && length !== '0');
  if (hasBody && !req.is('application/json')) {
    return next(
      new CloudError(
        'UnsupportedMediaType',
        'The request body must be JSON, sent with Content-Type: application/json.',
        415,
      ),
    );
  }
  next();
}

export function bearerAuth(adminKey: string) {
  const expected = createHash('sha256').update(adminKey).digest();
  return (req: Request, _res: Response, next: NextFunction) => {
    const header = req.get('authorization') ?? '';
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    const given = createHash('sha256')
      .update(m?.[1] ?? '')
      .digest();
    if (!m || !timingSafeEqual(given, expected)) return next(errors.unauthorized());
    next();
  };
}

/**
 * Changes need the job queue: with Redis down (or hung) they answer 503 ServiceUnavailable before
 * anything is written, instead of committing work nobody can pick up. Reads, and the resources
 * kept only in the database (`exempt`, paths under /v1), go on working.
 */
export function requireQueueForChanges(queue: JobQueue, exempt: RegExp) {
  return async (req: Request, _res: Response, next: NextFunction) => {
    if (req.method === 'GET' || req.method === 'HEAD' || exempt.test(req.path)) return next();
    try {
      // 1.5 s here and at most 2 s for the enqueue after the commit: an answer within 5 s.
      await queue.assertAvailable(1500);
      next();
    } catch (e) {
      next(e);
    }
  };
}

const queueDown = () =>
  errors.serviceUnavailable('The job queue (Redis) is unavailable; try again later.');
const databaseDown = () =>
  errors.serviceUnavailable('The database is unavailable; try again later.');

/**
 * The one place errors become HTTP: CloudError keeps its status; bad JSON is 400; an unavailable
 * dependency, or a database that stayed busy past the bounded wait, is 503 (nothing was changed;
 * retry); the rest 500.
 */
export function errorMiddleware(log: (msg: string, err: unknown) => void) {
  return (error: unknown, _req: Request, res: Response, _next: NextFunction) => {
    let err = error;
    if (err instanceof QueueUnavailableError) err = queueDown();
    else if (!isDatabaseBusy(err) && isDatabaseUnavailable(err)) err = databaseDown();
    if (err instanceof CloudError) {
      if (err.status === 503) log(`unavailable: ${(error as Error).message}`, undefined);
      res.status(err.status).json({ error: { code: err.code, message: err.message } });
      return;
    }
    if (isDatabaseBusy(err)) {
      log('database busy', err);
      res
        .status(503)
        .set('retry-after', '1')
        .json({
          error: {
            code: 'ServiceUnavailable',
            message: 'The database is busy; retry the request (with the same clientToken, if any).',
          },
        });
      return;
    }
    const e = err as { type?: string; status?: number; message?: string };
    if (e?.type === 'entity.parse.failed') {
      res
        .status(400)
        .json({ error: { code: 'MalformedJSON', message: 'The request body is not valid JSON.' } });
      return;
    }
    if (e?.type === 'entity.too.large') {
      res
        .status(413)
        .json({ error: { code: 'RequestTooLarge', message: 'The request body is too large.' } });
      return;
    }
    if (typeof e?.status === 'number' && e.status >= 400 && e.status < 500) {
      res
        .status(e.status)
        .json({ error: { code: 'InvalidRequest', message: e.message ?? 'bad request' } });
      return;
    }
    log('internal error', err);
    res
      .status(500)
      .json({ error: { code: 'InternalError', message: 'An internal error occurred.' } });
  };
}
