import { CloudError } from '@minicloud/domain';
import { QueryTimeoutError } from '@minicloud/queue';
import type { ServiceContext } from '../src/services/context.js';
import { consoleOutput } from '../src/services/instances/console.js';

const ID = 'i-0123456789abcdef0';

/** A context whose database knows one instance and whose queue answers with `answer`. */
function contextWith(answer: () => Promise<{ output: string }>) {
  const asked: unknown[] = [];
  const ctx = {
    db: {
      instance: { findUnique: async ({ where }: any) => (where.id === ID ? { id: ID } : null) },
    },
    queue: {
      request: async (...args: unknown[]) => {
        asked.push(args);
        return answer();
      },
    },
  } as unknown as ServiceContext;
  return { ctx, asked };
}

describe('the console through a worker query', () => {
  it("answers with the worker's base64 tail", async () => {
    const { ctx, asked } = contextWith(async () => ({ output: 'TGludXg=' }));
    await expect(consoleOutput(ctx, ID)).resolves.toMatchObject({
      instanceId: ID,
      output: 'TGludXg=',
    });
    expect(asked).toEqual([['instance.console', { instanceId: ID }, { timeoutMs: 10_000 }]]);
  });

  it('is 404 for an unknown instance, without asking a worker', async () => {
    const { ctx, asked } = contextWith(async () => ({ output: '' }));
    const e = await consoleOutput(ctx, 'i-00000000000000000').catch((x: unknown) => x);
    expect(e).toBeInstanceOf(CloudError);
    expect(e).toMatchObject({ code: 'InvalidInstanceID.NotFound', status: 404 });
    expect(asked).toEqual([]);
  });

  it('is 503 ServiceUnavailable when no worker answers in time', async () => {
    const { ctx } = contextWith(async () => {
      throw new QueryTimeoutError('instance.console', 10_000);
    });
    const e = await consoleOutput(ctx, ID).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(CloudError);
    expect(e).toMatchObject({ code: 'ServiceUnavailable', status: 503 });
    expect((e as Error).message).toMatch(/worker/);
  });
});
