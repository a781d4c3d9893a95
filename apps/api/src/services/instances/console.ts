import { CloudError } from '@minicloud/domain';
import { findInstance } from '@minicloud/db';
import { QueryTimeoutError } from '@minicloud/queue';
import type { ServiceContext } from '../context.js';
import { instanceNotFound } from './view.js';

/** How long the API waits for a worker to read a console (a file read: milliseconds). */
const CONSOLE_TIMEOUT_MS = 10_000;

/**
 * The last 64 KiB of the serial console, base64 as EC2's GetConsoleOutput. The log lives on the
 * host that runs the guest: a worker reads it (the 'instance.console' query), so the API needs
 * no access to the guest's files.
 */
export async function consoleOutput(ctx: ServiceContext, instanceId: string) {
  if (!(await findInstance(ctx.db, instanceId))) throw instanceNotFound(instanceId);
  try {
    const { output } = await ctx.queue.request(
      'instance.console',
      { instanceId },
      { timeoutMs: CONSOLE_TIMEOUT_MS },
    );
    return { instanceId, timestamp: new Date().toISOString(), output };
  } catch (e) {
    if (e instanceof QueryTimeoutError) {
      throw new CloudError(
        'ServiceUnavailable',
        `No worker read the console of ${instanceId} within ${CONSOLE_TIMEOUT_MS / 1000} s; is a minicloud worker running? Try again.`,
        503,
      );
    }
    throw e;
  }
}
