import { startApiOnly } from '@minicloud/testkit/api-harness';

type Harness = Awaited<ReturnType<typeof startApiOnly>>;

/** Image import by URL: the API refuses what is plainly forbidden (SSRF) and creates nothing. */
describe('POST /v1/images with a URL source', () => {
  let h: Harness;
  let lan: Harness;
  beforeAll(async () => {
    h = await startApiOnly();
    lan = await startApiOnly({ imageImportAllow: '127.0.0.1,images.lan' });
  });
  afterAll(async () => {
    await h?.close();
    await lan?.close();
  });

  it.each([
    ['http://127.0.0.1:8080/x.qcow2', /127\.0\.0\.1 is a loopback address/],
    ['http://2130706433/x.qcow2', /127\.0\.0\.1 is a loopback address/],
    ['http://[::1]:8080/x.qcow2', /loopback/],
    ['http://[::ffff:127.0.0.1]/x.qcow2', /loopback/],
    ['http://localhost:8080/x.qcow2', /loopback name/],
    ['http://169.254.169.254/latest/meta-data/iam/', /link-local/],
    ['http://[fe80::1]/x', /link-local/],
    ['http://10.0.0.1/x.qcow2', /private/],
    ['http://192.168.1.1/x.qcow2', /private/],
    ['http://[fd00::1]/x.qcow2', /private/],
    ['http://100.64.0.1/x.qcow2', /shared/],
    ['http://224.0.0.1/x.qcow2', /multicast/],
    ['http://0.0.0.0:8080/x.qcow2', /unspecified/],
    ['http://255.255.255.255/x.qcow2', /broadcast/],
    ['http://user:secret@images.example.com/x.qcow2', /credentials/],
  ])('refuses %s with 400 InvalidParameterValue', async (source, why) => {
    const r = await h.client.request('POST', '/v1/images', { name: 'ssrf', source });
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('InvalidParameterValue');
    expect(r.body.error.message).toMatch(why);
    expect(await h.db.image.count()).toBe(0);
  });

  it('accepts a public name (its addresses are checked by the worker when it connects)', async () => {
    const r = await h.client.request('POST', '/v1/images', {
      name: 'debian',
      source: 'https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-generic-amd64.qcow2',
    });
    expect(r.status).toBe(202);
    expect(r.body.state).toBe('pending');
  });

  it('accepts a LAN server the admin allows (MINICLOUD_IMAGE_IMPORT_ALLOW)', async () => {
    for (const [name, source] of [
      ['lan-1', 'http://127.0.0.1:8080/x.qcow2'],
      ['lan-2', 'http://images.lan/x.qcow2'],
    ]) {
      const r = await lan.client.request('POST', '/v1/images', { name, source });
      expect(r.status).toBe(202);
    }
    const refused = await lan.client.request('POST', '/v1/images', {
      name: 'lan-3',
      source: 'http://127.0.0.2:8080/x.qcow2',
    });
    expect(refused.status).toBe(400);
    expect(await lan.db.image.count()).toBe(2);
  });
});
