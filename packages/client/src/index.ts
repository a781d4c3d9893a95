/** A small typed HTTP client for the minicloud API (used by the CLI, the dashboard and tests). */
export interface ApiResponse<T = any> {
  status: number;
  body: T;
}

export class MinicloudApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(`${status} ${code}: ${message}`);
    this.name = 'MinicloudApiError';
  }
}

export class MinicloudClient {
  constructor(private readonly options: { baseUrl: string; apiKey: string }) {}

  /** A raw request: never throws on HTTP status, so callers can assert on 4xx answers. */
  async request<T = any>(
    method: string,
    path: string,
    body?: unknown,
    rawBody?: string,
  ): Promise<ApiResponse<T>> {
    const res = await fetch(`${this.options.baseUrl}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${this.options.apiKey}`,
        ...(body !== undefined || rawBody !== undefined
          ? { 'content-type': 'application/json' }
          : {}),
      },
      body: rawBody ?? (body === undefined ? undefined : JSON.stringify(body)),
    });
    const text = await res.text();
    return { status: res.status, body: text ? (JSON.parse(text) as T) : (undefined as T) };
  }

  /** A request that must succeed (2xx); otherwise throws MinicloudApiError with the EC2 code. */
  async call<T = any>(method: string, path: string, body?: unknown): Promise<T> {
    const r = await this.request<any>(method, path, body);
    if (r.status >= 300) {
      throw new MinicloudApiError(
        r.status,
        r.body?.error?.code ?? 'Unknown',
        r.body?.error?.message ?? '',
      );
    }
    return r.body as T;
  }

  createKeyPair(keyName: string, keyType: 'ed25519' | 'rsa' = 'ed25519') {
    return this.call('POST', '/v1/key-pairs', { keyName, keyType });
  }

  runInstances(input: Record<string, unknown>) {
    return this.call('POST', '/v1/instances', input);
  }

  describeInstance(instanceId: string) {
    return this.call('GET', `/v1/instances/${instanceId}`);
  }

  describeInstances(query = '') {
    return this.call<{ instances: any[] }>('GET', `/v1/instances${query}`);
  }

  /** Poll until the instance reaches one of `states` (throws on timeout with the last state). */
  async waitForInstanceState(
    instanceId: string,
    states: string[],
    timeoutMs = 120_000,
    intervalMs = 100,
  ) {
    const deadline = Date.now() + timeoutMs;
    let last: any;
    while (Date.now() < deadline) {
      last = await this.describeInstance(instanceId);
      if (states.includes(last.state.name)) return last;
      await new Promise((r) => setTimeout(r, intervalMs));
    }
    throw new Error(
      `${instanceId} did not reach ${states.join('|')} in ${timeoutMs} ms (last: ${last?.state?.name}, ${last?.stateReason})`,
    );
  }

  async waitForImage(imageId: string, timeoutMs = 120_000) {
    const deadline = Date.now() + timeoutMs;
    let last: any;
    while (Date.now() < deadline) {
      last = await this.call('GET', `/v1/images/${imageId}`);
      if (last.state === 'available') return last;
      if (last.state === 'failed') throw new Error(`image ${imageId} failed: ${last.stateReason}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`image ${imageId} not available in ${timeoutMs} ms (last: ${last?.state})`);
  }
}
