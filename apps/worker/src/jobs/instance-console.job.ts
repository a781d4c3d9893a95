import { open } from 'node:fs/promises';
import type { QueryResult } from '@minicloud/queue';
import type { WorkerDeps } from '../context.js';
import { instanceLayout } from '../instance-host.js';

/** As much of the console as EC2's GetConsoleOutput returns. */
const CONSOLE_TAIL_BYTES = 64 * 1024;

/**
 * instance.console (a query): the last 64 KiB of the guest's serial console log, base64. Read
 * here, on the host that runs the guest, so the API can run elsewhere. No log yet: empty.
 */
export async function readConsoleOutput(
  deps: WorkerDeps,
  instanceId: string,
): Promise<QueryResult<'instance.console'>> {
  let output = Buffer.alloc(0);
  try {
    const fh = await open(instanceLayout(deps, instanceId).consoleLog, 'r');
    try {
      const { size } = await fh.stat();
      const length = Math.min(size, CONSOLE_TAIL_BYTES);
      output = Buffer.alloc(length);
      await fh.read(output, 0, length, size - length);
    } finally {
      await fh.close();
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  return { output: output.toString('base64') };
}
