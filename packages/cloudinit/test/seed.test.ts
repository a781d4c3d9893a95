import { MAX_USER_DATA_BYTES } from '@minicloud/domain';
import { goldenFiles } from '@minicloud/testkit/golden';
import {
  buildSeedDocuments,
  genisoimageArgs,
  normalizePublicKey,
  SeedError,
  yamlString,
  type SeedInput,
} from '../src/index.js';
import { ECDSA_NO_COMMENT, ED25519, RSA_ODD_COMMENT } from './keys.js';

const golden = goldenFiles(import.meta.url);

const input = (overrides: Partial<SeedInput> = {}): SeedInput => ({
  instanceId: 'i-0123456789abcdef0',
  hostname: 'ip-10-11-0-5',
  publicKeys: [ED25519],
  userData: null,
  mac: '52:54:00:AB:CD:EF',
  ...overrides,
});

describe('buildSeedDocuments', () => {
  it('writes meta-data exactly as NoCloud expects', () => {
    const docs = buildSeedDocuments(input());
    expect(docs.metaData).toBe(
      'instance-id: i-0123456789abcdef0\n' +
        'local-hostname: ip-10-11-0-5\n' +
        'public-keys:\n' +
        `  - ${ED25519}\n`,
    );
    golden('meta-data', docs.metaData);
  });

  it('quotes what YAML would misread and omits public-keys when there are none', () => {
    golden(
      'meta-data-keys',
      buildSeedDocuments(input({ publicKeys: [ED25519, ECDSA_NO_COMMENT, RSA_ODD_COMMENT] }))
        .metaData,
    );
    expect(buildSeedDocuments(input({ publicKeys: [] })).metaData).toBe(
      'instance-id: i-0123456789abcdef0\nlocal-hostname: ip-10-11-0-5\n',
    );
  });

  it('writes a v2 network-config that DHCPs the NIC with the (quoted) MAC', () => {
    const { networkConfig } = buildSeedDocuments(input());
    golden('network-config', networkConfig);
    expect(networkConfig).toContain('macaddress: "52:54:00:ab:cd:ef"');
    expect(networkConfig).not.toContain('set-name');
  });

  it('passes user-data through byte for byte, empty when null', () => {
    const bytes = Buffer.from([
      0x23, 0x21, 0x2f, 0x62, 0x69, 0x6e, 0x2f, 0x73, 0x68, 0x0a, 0x00, 0xff, 0xfe, 0x0d, 0x0a,
    ]);
    const docs = buildSeedDocuments(input({ userData: bytes }));
    expect(docs.userData.equals(bytes)).toBe(true);
    expect(docs.userData).not.toBe(bytes); // a copy: later changes to the input do not leak in
    expect(buildSeedDocuments(input()).userData.length).toBe(0);
  });

  it('takes user data up to the one limit the API checks', () => {
    const bytes = Buffer.alloc(MAX_USER_DATA_BYTES, 0x41);
    expect(buildSeedDocuments(input({ userData: bytes })).userData.length).toBe(
      MAX_USER_DATA_BYTES,
    );
  });

  it.each<[string, Partial<SeedInput>]>([
    ['bad instance id', { instanceId: 'i-xyz' }],
    ['hostname with a newline', { hostname: 'a\nb' }],
    ['hostname with a colon', { hostname: 'a: b' }],
    ['numeric hostname', { hostname: '1234' }],
    ['hostname label too long', { hostname: 'a'.repeat(64) }],
    ['multicast mac', { mac: '01:00:5e:00:00:01' }],
    ['bad mac', { mac: '52:54:00:ab:cd' }],
    ['key with a newline', { publicKeys: [`${ED25519}\nssh-ed25519 AAAA evil`] }],
    ['key of an unknown type', { publicKeys: [ED25519.replace('ssh-ed25519', 'ssh-dss')] }],
    ['key whose data is another type', { publicKeys: [ED25519.replace('ssh-ed25519', 'ssh-rsa')] }],
    ['key with non-ASCII comment', { publicKeys: [`${ED25519}\u2028x`] }],
    ['key with bad base64', { publicKeys: ['ssh-ed25519 AAAA$$$$ x'] }],
    ['user data too big', { userData: Buffer.alloc(MAX_USER_DATA_BYTES + 1) }],
  ])('rejects %s', (_w, patch) => {
    expect(() => buildSeedDocuments(input(patch))).toThrow(SeedError);
  });
});

describe('normalizePublicKey', () => {
  it('trims and keeps the comment', () => {
    expect(normalizePublicKey(`  ${ED25519}  `)).toBe(ED25519);
    expect(normalizePublicKey(`${ECDSA_NO_COMMENT} `)).toBe(ECDSA_NO_COMMENT);
  });
});

describe('yamlString', () => {
  it.each([
    ['ip-10-11-0-5', 'ip-10-11-0-5'],
    ['i-0123456789abcdef0', 'i-0123456789abcdef0'],
    [ED25519, ED25519],
    ['yes', '"yes"'],
    ['Off', '"Off"'],
    ['null', '"null"'],
    ['1234', '"1234"'],
    ['12:30', '"12:30"'],
    ['a: b', '"a: b"'],
    ['a #b', '"a #b"'],
    ['say "hi"', '"say \\"hi\\""'],
    ['', '""'],
    ['trailing ', '"trailing "'],
  ])('%j -> %s', (value, want) => expect(yamlString(value)).toBe(want));
});

describe('genisoimageArgs', () => {
  it('names the volume cidata and the files exactly', () => {
    expect(genisoimageArgs('/x/seed.iso.tmp')).toEqual([
      '-output',
      '/x/seed.iso.tmp',
      '-volid',
      'cidata',
      '-joliet',
      '-rock',
      '-quiet',
      'meta-data',
      'user-data',
      'network-config',
    ]);
  });
});
