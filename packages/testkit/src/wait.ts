import type { MinicloudUnderTest } from './minicloud-process.js';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Poll `fn` until it returns something truthy (errors count as "not yet"); throw on timeout. */
export async function until<T>(
  what: string,
  fn: () => Promise<T | undefined | null | false>,
  timeoutMs = 180_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    await sleep(200);
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
}

/** The default (test) image of a minicloud under test, once it is available. */
export async function defaultImage(mc: MinicloudUnderTest): Promise<any> {
  return until('the default image', async () => {
    const image = (await mc.client.call('GET', '/v1/images')).images.find((i: any) => i.isDefault);
    if (image?.state === 'failed') throw new Error(`default image failed: ${image.stateReason}`);
    return image?.state === 'available' ? image : null;
  });
}
