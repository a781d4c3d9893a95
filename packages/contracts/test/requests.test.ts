import {
  CreateImageRequest,
  KeyName,
  RunInstancesRequest,
  SafeName,
  buildOpenApiDocument,
} from '../src/index.js';

describe('request validation', () => {
  it('accepts a minimal launch and fills defaults', () => {
    const r = RunInstancesRequest.parse({
      imageId: 'ami-0123456789abcdef0',
      instanceType: 't3.micro',
    });
    expect(r.minCount).toBe(1);
  });

  it.each([
    [{ imageId: 'ami-x', instanceType: 't3.micro' }],
    [{ imageId: 'ami-0123456789abcdef0', instanceType: 't3.micro', userData: 'not base64!' }],
    [{ imageId: 'ami-0123456789abcdef0', instanceType: 't3.micro', minCount: 0 }],
    [{ imageId: 'ami-0123456789abcdef0', instanceType: 't3.micro', unknownField: 1 }],
    [{ imageId: 'ami-0123456789abcdef0', instanceType: '../../x' }],
    [{ imageId: 'ami-0123456789abcdef0', instanceType: 't3.micro', keyName: 'a;rm -rf /' }],
  ])('refuses %j', (input) => {
    expect(RunInstancesRequest.safeParse(input).success).toBe(false);
  });

  it('keeps names free of path and shell characters', () => {
    for (const bad of ['../etc', 'a/b', 'a;b', '$(x)', '`x`', 'a\nb', '']) {
      expect(SafeName.safeParse(bad).success).toBe(false);
    }
    expect(SafeName.safeParse('debian 12 (genericcloud)').success).toBe(true);
    expect(KeyName.safeParse('my-key_1.pub').success).toBe(true);
    expect(KeyName.safeParse('my key').success).toBe(false);
  });

  it('takes only absolute paths or http(s) URLs as image sources', () => {
    expect(CreateImageRequest.safeParse({ name: 'x', source: '/srv/x.qcow2' }).success).toBe(true);
    expect(
      CreateImageRequest.safeParse({ name: 'x', source: 'https://example.org/x.qcow2' }).success,
    ).toBe(true);
    expect(CreateImageRequest.safeParse({ name: 'x', source: 'relative.qcow2' }).success).toBe(
      false,
    );
    expect(CreateImageRequest.safeParse({ name: 'x', source: 'file:///etc/shadow' }).success).toBe(
      false,
    );
  });

  it('builds an OpenAPI document with request schemas', () => {
    const doc = buildOpenApiDocument() as { openapi: string; paths: Record<string, any> };
    expect(doc.openapi).toBe('3.1.0');
    const schema = doc.paths['/v1/instances'].post.requestBody.content['application/json'].schema;
    expect(schema.required).toEqual(expect.arrayContaining(['imageId', 'instanceType']));
  });
});
