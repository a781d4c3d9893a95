import type { MinicloudClient } from '@minicloud/client';

/** The `code` of the error `fn` throws (null when it returns); another error type says so. */
export function codeOf(
  fn: () => unknown,
  type: abstract new (...args: any[]) => Error & { code: string },
): string | null {
  try {
    fn();
    return null;
  } catch (e) {
    return e instanceof type ? e.code : `not a ${type.name}: ${String(e)}`;
  }
}

/**
 * A request that must be refused with `status` and the EC2-like `code`, and must change nothing
 * that `snapshot` sees (row counts, for example).
 */
export async function expectRefused(
  client: MinicloudClient,
  snapshot: () => Promise<unknown>,
  request: { method: string; path: string; body?: unknown },
  status: number,
  code: string,
) {
  const before = await snapshot();
  const r = await client.request(request.method, request.path, request.body);
  const { path } = request;
  expect({ path, status: r.status, code: r.body?.error?.code }).toEqual({ path, status, code });
  expect(await snapshot()).toEqual(before);
  return r;
}
