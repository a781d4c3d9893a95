import { randomBytes } from 'node:crypto';

/** EC2-style public id prefixes. */
export const ID_PREFIXES = {
  instance: 'i',
  image: 'ami',
  volume: 'vol',
  snapshot: 'snap',
  vpc: 'vpc',
  subnet: 'subnet',
  securityGroup: 'sg',
  elasticIp: 'eipalloc',
  elasticIpAssociation: 'eipassoc',
  internetGateway: 'igw',
  publicIpv4Pool: 'ipv4pool',
  securityGroupRule: 'sgr',
  networkInterface: 'eni',
  keyPair: 'key',
  reservation: 'r',
} as const;

export type IdKind = keyof typeof ID_PREFIXES;

/** A new id: prefix, dash, 17 lowercase hex digits (as EC2's long ids). */
export function newId(kind: IdKind): string {
  return `${ID_PREFIXES[kind]}-${randomBytes(9).toString('hex').slice(0, 17)}`;
}

export function isId(kind: IdKind, value: unknown): value is string {
  return typeof value === 'string' && new RegExp(`^${ID_PREFIXES[kind]}-[0-9a-f]{17}$`).test(value);
}
