/**
 * NoCloud seed documents (meta-data, user-data, network-config). Pure: validated inputs in,
 * exact bytes out; golden tests pin them.
 */
import { assertHostname, NetworkValidationError, normalizeMac } from '@minicloud/domain';

export interface SeedInput {
  instanceId: string;
  hostname: string;
  /** OpenSSH public keys, one line each: ssh-ed25519, ssh-rsa, ecdsa-sha2-nistp*, sk-*. */
  publicKeys: string[];
  /** Passed through byte for byte; null -> empty user-data. */
  userData: Buffer | null;
  /** MAC of the NIC to configure with DHCP. */
  mac: string;
}

export interface SeedDocuments {
  metaData: string;
  userData: Buffer;
  networkConfig: string;
}

export class SeedError extends Error {
  readonly code = 'InvalidParameterValue';
  constructor(message: string) {
    super(message);
    this.name = 'SeedError';
  }
}

/** EC2 caps user data at 16 KiB (after base64 decoding); NoCloud has no limit, we keep EC2's. */
export const MAX_USER_DATA_BYTES = 16 * 1024;

const INSTANCE_ID_RE = /^i-[0-9a-f]{8,17}$/;
const KEY_TYPES = new Set([
  'ssh-ed25519',
  'ssh-rsa',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'sk-ssh-ed25519@openssh.com',
  'sk-ecdsa-sha2-nistp256@openssh.com',
]);

/**
 * Validate one OpenSSH public key line: "TYPE BASE64 [comment]", the base64 blob decoding to a
 * key whose embedded type string is TYPE, the comment printable ASCII. Returns it normalised
 * (trimmed, single spaces between the parts).
 */
export function normalizePublicKey(line: string): string {
  if (typeof line !== 'string' || line.length > 16 * 1024)
    throw new SeedError('invalid public key');
  const m = /^\s*(\S+) ([A-Za-z0-9+/]+={0,3})(?: +([\x20-\x7e]*?))?\s*$/.exec(line);
  if (!m) throw new SeedError('public key must be one line: TYPE BASE64 [comment]');
  const [, type, blob, comment] = m as unknown as [string, string, string, string | undefined];
  if (!KEY_TYPES.has(type))
    throw new SeedError(`unsupported public key type ${JSON.stringify(type)}`);
  const bytes = Buffer.from(blob, 'base64');
  const nameLen = bytes.length >= 4 ? bytes.readUInt32BE(0) : -1;
  if (
    nameLen <= 0 ||
    nameLen > 64 ||
    bytes.length < 4 + nameLen ||
    bytes.toString('latin1', 4, 4 + nameLen) !== type
  ) {
    throw new SeedError(`public key data does not match its type ${type}`);
  }
  return comment ? `${type} ${blob} ${comment}` : `${type} ${blob}`;
}

const YAML_RESERVED = /^(y|n|yes|no|true|false|on|off|null|~)$/i;
const YAML_PLAIN_SAFE = /^[A-Za-z][A-Za-z0-9._/+=@-]*( [A-Za-z0-9._/+=@-]+)*$/;

/**
 * A YAML scalar that reads back as exactly `value`, as a string: plain when that is unambiguous
 * (starts with a letter, no ':' '#' quotes or other indicators, not a YAML 1.1 boolean/null),
 * else double-quoted (a JSON string is a valid YAML double-quoted scalar; inputs are ASCII).
 */
export function yamlString(value: string): string {
  if (YAML_PLAIN_SAFE.test(value) && !YAML_RESERVED.test(value)) return value;
  return JSON.stringify(value);
}

/** Run one of the domain's checks, its NetworkValidationError reported as a SeedError. */
function seedCheck<T>(check: () => T): T {
  try {
    return check();
  } catch (e) {
    if (e instanceof NetworkValidationError) throw new SeedError(e.message);
    throw e;
  }
}

export function buildSeedDocuments(input: SeedInput): SeedDocuments {
  if (typeof input.instanceId !== 'string' || !INSTANCE_ID_RE.test(input.instanceId)) {
    throw new SeedError(`invalid instance id ${JSON.stringify(input.instanceId)}`);
  }
  const hostname = seedCheck(() => assertHostname(input.hostname));
  if (!Array.isArray(input.publicKeys) || input.publicKeys.length > 100)
    throw new SeedError('invalid publicKeys');
  const keys = input.publicKeys.map(normalizePublicKey);
  const mac = seedCheck(() => normalizeMac(input.mac));
  if (input.userData !== null && !Buffer.isBuffer(input.userData))
    throw new SeedError('userData must be a Buffer or null');
  if (input.userData && input.userData.length > MAX_USER_DATA_BYTES) {
    throw new SeedError(`user data is larger than ${MAX_USER_DATA_BYTES} bytes`);
  }

  const meta = [
    `instance-id: ${yamlString(input.instanceId)}`,
    `local-hostname: ${yamlString(hostname)}`,
  ];
  if (keys.length > 0) {
    meta.push('public-keys:', ...keys.map((k) => `  - ${yamlString(k)}`));
  }

  // MACs must be quoted: unquoted, YAML 1.1 (PyYAML, which cloud-init uses) reads
  // 52:54:00:12:34:56 as a base-60 integer.
  const network = [
    'version: 2',
    'ethernets:',
    '  eth0:',
    '    match:',
    `      macaddress: "${mac}"`,
    '    dhcp4: true',
  ];

  return {
    metaData: meta.join('\n') + '\n',
    userData: input.userData ? Buffer.from(input.userData) : Buffer.alloc(0),
    networkConfig: network.join('\n') + '\n',
  };
}
