import { createHash } from 'node:crypto';
import ssh2 from 'ssh2';
import { errors, newId } from '@minicloud/domain';
import { isUniqueViolation } from '@minicloud/db';
import type { KeyPair } from '@prisma/client';
import type { ServiceContext } from './context.js';

const { utils } = ssh2;

/** SHA-256 of the public key blob, base64 (the fingerprint EC2 shows for ED25519 keys). */
export function fingerprintOf(publicKeyLine: string): string {
  const blob = Buffer.from(publicKeyLine.split(/\s+/)[1] ?? '', 'base64');
  return createHash('sha256').update(blob).digest('base64');
}

function present(k: KeyPair) {
  return {
    keyPairId: k.id,
    keyName: k.name,
    keyType: k.keyType,
    keyFingerprint: k.fingerprint,
    publicKey: k.publicKey,
    createTime: k.createdAt.toISOString(),
  };
}

/** Accept an OpenSSH public key line, or (as EC2 does) its base64 encoding. */
function parsePublicKey(material: string): { line: string; keyType: string } {
  let text = material.trim();
  if (!/^(ssh-|ecdsa-)/.test(text)) text = Buffer.from(text, 'base64').toString('utf8').trim();
  if (/[\r\n\0]/.test(text))
    throw errors.invalidParameter('publicKeyMaterial must be a single public key.');
  const parsed = utils.parseKey(text);
  if (parsed instanceof Error || Array.isArray(parsed) || parsed.isPrivateKey()) {
    throw errors.invalidParameter(
      'publicKeyMaterial is not a valid OpenSSH public key (ssh-ed25519, ssh-rsa or ecdsa-sha2-*).',
    );
  }
  const [type, body] = text.split(/\s+/);
  const keyType = type === 'ssh-ed25519' ? 'ed25519' : type === 'ssh-rsa' ? 'rsa' : 'ecdsa';
  return { line: `${type} ${body}`, keyType };
}

/** One pair from ssh2's asynchronous generator (node:crypto's, off the event loop). */
function generateOnce(keyType: 'ed25519' | 'rsa', comment: string) {
  return new Promise<{ private: string; public: string }>((resolve, reject) => {
    const done = (err: Error | null, pair: { private: string; public: string }) =>
      err ? reject(err) : resolve(pair);
    if (keyType === 'rsa') utils.generateKeyPair('rsa', { bits: 3072, comment }, done);
    else utils.generateKeyPair('ed25519', { comment }, done);
  });
}

/**
 * A new key pair in OpenSSH format, generated in libuv's thread pool: a 3072-bit RSA key takes
 * about 650 ms, which would stall every request if done on the event loop. ssh2's generator
 * writes an ed25519 key whose first byte is zero as 31 bytes (about 1 key in 256): such a key
 * is unusable (ssh2 and OpenSSH refuse it), so every pair is parsed back and a bad one drawn
 * again.
 */
export async function generateKeyPair(keyType: 'ed25519' | 'rsa', comment: string) {
  for (let attempt = 1; ; attempt++) {
    const pair = await generateOnce(keyType, comment);
    const priv = utils.parseKey(pair.private);
    const pub = utils.parseKey(pair.public);
    const ok =
      !(priv instanceof Error) &&
      !(pub instanceof Error) &&
      (keyType === 'rsa' || pub.getPublicSSH().length === 51); // 4+11 (type) + 4+32 (key)
    if (ok) return pair;
    if (attempt >= 20) throw new Error(`could not generate a valid ${keyType} key pair`);
  }
}

export class KeyPairService {
  constructor(private readonly ctx: ServiceContext) {}

  async create(keyName: string, keyType: 'ed25519' | 'rsa') {
    await this.assertFree(keyName);
    const pair = await generateKeyPair(keyType, keyName);
    const publicLine = pair.public.trim().split(/\s+/).slice(0, 2).join(' ');
    const row = await this.insert(keyName, keyType, publicLine);
    // The private key is returned this once and never stored.
    return { ...present(row), keyMaterial: pair.private };
  }

  async import(keyName: string, material: string) {
    await this.assertFree(keyName);
    const { line, keyType } = parsePublicKey(material);
    return present(await this.insert(keyName, keyType, line));
  }

  async list() {
    const rows = await this.ctx.db.keyPair.findMany({ orderBy: { name: 'asc' } });
    return rows.map(present);
  }

  async delete(keyName: string) {
    const { count } = await this.ctx.db.keyPair.deleteMany({ where: { name: keyName } });
    if (count === 0) throw notFound(keyName);
    return { keyName, deleted: true };
  }

  async findByName(keyName: string) {
    return this.ctx.db.keyPair.findUnique({ where: { name: keyName } });
  }

  private async assertFree(keyName: string) {
    if (await this.findByName(keyName)) throw duplicate(keyName);
  }

  private async insert(keyName: string, keyType: string, publicLine: string) {
    try {
      return await this.ctx.db.keyPair.create({
        data: {
          id: newId('keyPair'),
          name: keyName,
          keyType,
          publicKey: publicLine,
          fingerprint: fingerprintOf(publicLine),
        },
      });
    } catch (e) {
      if (isUniqueViolation(e)) throw duplicate(keyName);
      throw e;
    }
  }
}

const duplicate = (name: string) =>
  errors.duplicate('InvalidKeyPair.Duplicate', `The key pair '${name}' already exists.`);
const notFound = (name: string) =>
  errors.notFound('InvalidKeyPair.NotFound', `The key pair '${name}' does not exist.`);
