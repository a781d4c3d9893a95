/**
 * writeSeedIso (built in-process); contents checked with isoinfo (genisoimage's package), and
 * the YAML read back by PyYAML (cloud-init's parser) when /usr/bin/python3 has it. The other
 * readers (Joliet, blkid, the guest kernel) are in iso-readers.int.ts.
 */
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { jest } from '@jest/globals';
import { run } from '@minicloud/host';
import { buildSeedDocuments, removeSeedIso, writeSeedIso } from '../src/index.js';
import { ECDSA_NO_COMMENT, ED25519, RSA_ODD_COMMENT } from './keys.js';

jest.setTimeout(60_000);

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp('/tmp/minicloud-test-seed-');
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

const userData = Buffer.concat([
  Buffer.from('#!/bin/sh\necho hello > /tmp/hello\n'),
  Buffer.from([0, 0xff, 0x0d, 0x0a]),
]);
const docs = buildSeedDocuments({
  instanceId: 'i-0123456789abcdef0',
  hostname: 'ip-10-11-0-5',
  publicKeys: [ED25519, ECDSA_NO_COMMENT, RSA_ODD_COMMENT],
  userData,
  mac: '52:54:00:ab:cd:ef',
});

/**
 * A file's bytes from the ISO, exactly: `isoinfo -l -R` gives each file's size and extent (the
 * number in brackets, in 2048-byte blocks); the bytes are read straight from the image (run()
 * decodes stdout as UTF-8, which would mangle binary user-data).
 */
async function extract(iso: string, file: string): Promise<Buffer> {
  const listing = (await run('isoinfo', ['-l', '-R', '-i', iso])).stdout;
  const line = listing.split('\n').find((l) => l.trimEnd().endsWith(` ${file}`));
  const m = line && /\s(\d+) \w{3} +\d+ \d{4} \[ *(\d+) +\d+\]/.exec(line);
  if (!m) throw new Error(`${file} not in ${iso}:\n${listing}`);
  const size = Number(m[1]);
  const extent = Number(m[2]);
  return (await readFile(iso)).subarray(extent * 2048, extent * 2048 + size);
}

describe('writeSeedIso', () => {
  it('writes an ISO labelled cidata with the three files, byte for byte', async () => {
    const iso = join(dir, 'seeds', 'i-0123456789abcdef0.iso');
    await writeSeedIso(iso, docs);
    const pvd = (await run('isoinfo', ['-d', '-i', iso])).stdout;
    expect(pvd).toMatch(/^Volume id: cidata$/m);
    expect(pvd).toMatch(/Rock Ridge signatures version/);
    expect(pvd).toMatch(/Joliet with UCS level/);
    const list = (await run('isoinfo', ['-i', iso, '-R', '-f'])).stdout
      .split('\n')
      .filter(Boolean)
      .sort();
    expect(list).toEqual(['/meta-data', '/network-config', '/user-data']);
    expect((await extract(iso, 'meta-data')).toString()).toBe(docs.metaData);
    expect((await extract(iso, 'network-config')).toString()).toBe(docs.networkConfig);
    expect((await extract(iso, 'user-data')).equals(userData)).toBe(true);
    expect((await stat(iso)).mode & 0o077).toBe(0); // user-data: root only (libvirt labels it for QEMU)
  });

  it('is safe to repeat, leaves no temp files, and removal is idempotent', async () => {
    const iso = join(dir, 'again.iso');
    await writeSeedIso(iso, docs);
    const empty = buildSeedDocuments({
      instanceId: 'i-0123456789abcdef1',
      hostname: 'ip-10-11-0-6',
      publicKeys: [],
      userData: null,
      mac: '52:54:00:ab:cd:ee',
    });
    await writeSeedIso(iso, empty);
    expect((await extract(iso, 'meta-data')).toString()).toBe(empty.metaData);
    expect((await extract(iso, 'user-data')).length).toBe(0);
    expect((await readdir(dir)).filter((n) => n.includes('.tmp-'))).toEqual([]);
    const staged = (await readdir('/tmp')).filter((n) => n.startsWith('minicloud-seed-'));
    expect(staged).toEqual([]);
    await removeSeedIso(iso);
    await removeSeedIso(iso);
    await expect(stat(iso)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('produces YAML that PyYAML (cloud-init) reads back as intended', async () => {
    const py = '/usr/bin/python3';
    const probe = await run(py, ['-c', 'import yaml']).then(
      () => true,
      () => false,
    );
    if (!probe) {
      console.warn('skipped: /usr/bin/python3 with PyYAML not available');
      return;
    }
    const load = async (text: string) =>
      JSON.parse(
        (
          await run(
            py,
            ['-c', 'import json,sys,yaml; print(json.dumps(yaml.safe_load(sys.stdin)))'],
            { input: text },
          )
        ).stdout,
      );
    expect(await load(docs.metaData)).toEqual({
      'instance-id': 'i-0123456789abcdef0',
      'local-hostname': 'ip-10-11-0-5',
      'public-keys': [ED25519, ECDSA_NO_COMMENT, RSA_ODD_COMMENT],
    });
    expect(await load(docs.networkConfig)).toEqual({
      version: 2,
      ethernets: { eth0: { match: { macaddress: '52:54:00:ab:cd:ef' }, dhcp4: true } },
    });
  });

  it('measures seed ISO creation (p50 of 20)', async () => {
    const times: number[] = [];
    for (let i = 0; i < 20; i++) {
      const t = performance.now();
      await writeSeedIso(join(dir, `bench-${i}.iso`), docs);
      times.push(performance.now() - t);
    }
    times.sort((a, b) => a - b);
    console.log(
      `writeSeedIso: p50 ${times[10]!.toFixed(1)} ms, min ${times[0]!.toFixed(1)}, max ${times[19]!.toFixed(1)} ms`,
    );
  });
});
