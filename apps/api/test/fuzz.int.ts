/**
 * A fuzz test generated from the contracts (issue 11): every route of the OpenAPI document (built
 * from packages/contracts' zod schemas) gets malformed requests: values of the wrong type,
 * strings that break the schema's pattern, enum or length, prototype keys as keys and values,
 * arrays for strings, huge and fractional numbers, unicode, unknown keys, bodies that are not
 * objects or not JSON, missing and wrong content types, malformed path parameters, and repeated
 * or invalid query filters. Each must answer 4xx with {error: {code, message}}, and when all
 * have run no database row has changed and no job was enqueued (the API alone runs here, with
 * no worker: a job is the only way it could have changed the host).
 *
 * Deterministic: one seeded PRNG (MINICLOUD_FUZZ_SEED overrides the seed to explore).
 */
import { buildOpenApiDocument, DescribeInstancesQuery } from '@minicloud/contracts';
import { newId } from '@minicloud/domain';
import { startApiOnly } from '@minicloud/testkit/api-harness';

type Harness = Awaited<ReturnType<typeof startApiOnly>>;
type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
interface Schema {
  type?: string | string[];
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: boolean | Schema;
  items?: Schema;
  anyOf?: Schema[];
  oneOf?: Schema[];
  enum?: Json[];
  const?: Json;
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  minItems?: number;
  maxItems?: number;
}
interface Case {
  method: string;
  path: string;
  /** JSON to send, or raw text (with rawType as its content type, null for none). */
  body?: Json;
  raw?: string;
  rawType?: string | null;
  why: string;
  /** 'METHOD /template' of the OpenAPI document (set by generateCases). */
  route?: string;
}

const SEED = Number(process.env.MINICLOUD_FUZZ_SEED ?? 20261202);

/** mulberry32: small, fast, good enough to pick cases; the same seed gives the same run. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    pick: <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]!,
    int: (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1)),
  };
}

/** (Keys as JSON text: an object literal's __proto__ would set its prototype, not a key.) */
const PROTOTYPE_KEYS = ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty'];
const STRINGS = [
  ...PROTOTYPE_KEYS,
  '',
  ' ',
  'x'.repeat(300),
  'y'.repeat(5000),
  '\u0000',
  'a\nb',
  '../../etc/passwd',
  '💥🔥',
  '\u202e\u2066',
  'ǅ\u0301',
  '\ud800',
  '%00',
  '1e400',
  '-1',
  'NaN',
  'true',
  'null',
  '{"a":1}',
  "'; DROP TABLE Instance; --",
];
const NUMBERS = [0, -1, 1.5, -0.5, 1e308, -1e308, 2 ** 53 + 2, 4294967296, 65536, 999999999];
const WRONG: Record<string, Json[]> = {
  string: STRINGS,
  number: NUMBERS,
  integer: NUMBERS,
  boolean: [true, false],
  null: [null],
  array: [[], ['x'], [1, 2], [null], [['nested']], [JSON.parse('{"__proto__": 1}') as Json]],
  object: [
    {},
    JSON.parse('{"__proto__": {"polluted": true}}') as Json,
    { constructor: 'x' },
    { a: [1] },
  ],
};

/** The JSON types a schema admits (an enum or const admits the types of its values). */
function typesOf(s: Schema): Set<string> {
  const out = new Set<string>();
  for (const b of [...(s.anyOf ?? []), ...(s.oneOf ?? [])]) for (const t of typesOf(b)) out.add(t);
  const t = s.type;
  for (const x of Array.isArray(t) ? t : t ? [t] : []) out.add(x);
  for (const v of [...(s.enum ?? []), ...(s.const !== undefined ? [s.const] : [])]) {
    out.add(v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);
  }
  if (out.has('integer')) out.add('number');
  if (out.size === 0) for (const k of Object.keys(WRONG)) out.add(k); // unconstrained
  return out;
}

function jsonType(v: Json): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

/** Whether `v` breaks `s` for certain (a value that merely might be valid is never used). */
function violates(s: Schema, v: Json): boolean {
  const branches = [...(s.anyOf ?? []), ...(s.oneOf ?? [])];
  if (branches.length) return branches.every((b) => violates(b, v));
  const types = typesOf(s);
  const t = jsonType(v);
  if (!types.has(t) && !(t === 'integer' && types.has('number'))) return true;
  if (s.enum && !s.enum.some((e) => e === v)) return true;
  if (s.const !== undefined && s.const !== v) return true;
  if (typeof v === 'string') {
    if (s.pattern && !new RegExp(s.pattern, 'u').test(v)) return true;
    if (s.maxLength !== undefined && [...v].length > s.maxLength) return true;
    if (s.minLength !== undefined && [...v].length < s.minLength) return true;
  }
  if (typeof v === 'number') {
    if (s.type === 'integer' && !Number.isInteger(v)) return true;
    if (s.maximum !== undefined && v > s.maximum) return true;
    if (s.minimum !== undefined && v < s.minimum) return true;
  }
  return false;
}

/** Property schemas of an object schema, merged over union branches. */
function propertiesOf(s: Schema): Map<string, Schema> {
  const out = new Map<string, Schema[]>();
  const branches = s.anyOf ?? s.oneOf ?? [s];
  for (const b of branches) {
    for (const [k, p] of Object.entries(b.properties ?? {})) {
      out.set(k, [...(out.get(k) ?? []), p]);
    }
  }
  // A key is invalid in a branch that lacks it (strict objects), so the union of its schemas is
  // what a value must break.
  return new Map([...out].map(([k, ps]) => [k, ps.length === 1 ? ps[0]! : { anyOf: ps }]));
}

/** Values that break `s` for certain, from the catalogue above. */
function invalidValues(s: Schema): Json[] {
  return Object.values(WRONG)
    .flat()
    .filter((v) => violates(s, v));
}

/** A well-formed id for a path parameter that names nothing. */
const ABSENT: Record<string, () => string> = {
  imageId: () => newId('image'),
  instanceId: () => newId('instance'),
  vpcId: () => newId('vpc'),
  subnetId: () => newId('subnet'),
  internetGatewayId: () => newId('internetGateway'),
  poolId: () => newId('publicIpv4Pool'),
  allocationId: () => newId('elasticIp'),
  groupId: () => newId('securityGroup'),
  ruleId: () => 'sgr-0123456789abcdef0',
  volumeId: () => newId('volume'),
  snapshotId: () => newId('snapshot'),
  keyName: () => 'no-such-key',
};
const BAD_PATH_VALUES = [
  'constructor',
  '__proto__',
  'toString',
  '%F0%9F%92%A5',
  '%00',
  '%2F..%2F',
  'x'.repeat(3000),
  '1e400',
  '-1',
  'i-XYZ',
  'ami-0123456789abcdef',
  '%E2%80%AE',
];

function fillPath(path: string, value: (param: string) => string): string {
  return path.replace(/\{(\w+)\}/g, (_m, p: string) => value(p));
}

/** The routes of the document that take input (a body or a path parameter). */
const inputRoutes = new Set<string>();

function generateCases(seed: number): Case[] {
  const r = prng(seed);
  const doc = buildOpenApiDocument() as {
    paths: Record<
      string,
      Record<string, { requestBody?: { content: Record<string, { schema: Schema }> } }>
    >;
  };
  const cases: Case[] = [];
  for (const [template, methods] of Object.entries(doc.paths)) {
    if (!template.startsWith('/v1/')) continue;
    for (const [m, op] of Object.entries(methods)) {
      const method = m.toUpperCase();
      const hasParams = template.includes('{');
      const schema = op.requestBody?.content['application/json']?.schema;
      const absentPath = () => fillPath(template, (p) => ABSENT[p]?.() ?? 'x');
      const first = cases.length;
      const tag = () => cases.slice(first).forEach((c) => (c.route ??= `${method} ${template}`));

      // Malformed path parameters (with or without a body).
      if (hasParams) {
        for (const bad of BAD_PATH_VALUES) {
          cases.push({
            method,
            path: fillPath(template, () => bad),
            why: `path ${bad.slice(0, 20)}`,
          });
        }
      }
      // Routes without a body and without parameters take no input: nothing to malform.
      if (!schema && !hasParams) {
        tag();
        continue;
      }
      inputRoutes.add(`${method} ${template}`);
      // A resource that does not exist: any body is refused (404 or 400 first).
      const target = hasParams ? absentPath : () => template;
      if (!schema) {
        cases.push({ method, path: target(), why: 'absent resource' });
        // (fetch sends no body with GET.)
        if (method !== 'GET')
          cases.push({
            method,
            path: target(),
            body: JSON.parse('{"__proto__": {"admin": true}}') as Json,
            why: 'absent + proto',
          });
        tag();
        continue;
      }

      // Bodies that are not a JSON object, or not JSON at all.
      for (const raw of [
        '{',
        '{"a":',
        '[1,2',
        'nul',
        '{"x": 1e400',
        "{'single': 1}",
        '\u0000',
        '{"a":1}}',
      ]) {
        cases.push({
          method,
          path: target(),
          raw,
          rawType: 'application/json',
          why: `bad JSON ${raw}`,
        });
      }
      for (const body of [[], [{}], 'string', 42, true, null] as Json[]) {
        cases.push({
          method,
          path: target(),
          raw: JSON.stringify(body),
          rawType: 'application/json',
          why: `body ${JSON.stringify(body)}`,
        });
      }
      // Missing or wrong content types (with a body that would otherwise be fine-looking).
      for (const rawType of [
        null,
        'text/plain',
        'application/x-www-form-urlencoded',
        'multipart/form-data; boundary=x',
        'application/xml',
        'application/json; charset=utf-16',
      ]) {
        cases.push({ method, path: target(), raw: '{}', rawType, why: `content type ${rawType}` });
      }
      // Unknown and prototype keys at the top level.
      for (const key of [...PROTOTYPE_KEYS, '💥', '', 'a'.repeat(200)]) {
        cases.push({
          method,
          path: target(),
          raw: `{${JSON.stringify(key)}: ${JSON.stringify(r.pick(STRINGS))}}`,
          rawType: 'application/json',
          why: `unknown key ${key}`,
        });
      }
      // One property at a time given a value that breaks its schema.
      for (const [key, prop] of propertiesOf(schema)) {
        const values = invalidValues(prop);
        for (let i = 0; i < Math.min(values.length, 14); i++) {
          const value = r.pick(values);
          cases.push({
            method,
            path: target(),
            body: { [key]: value },
            why: `${key}=${JSON.stringify(value).slice(0, 30)}`,
          });
        }
        // Nested: an object's or an array item's properties (tags, rules, mappings).
        const inner =
          prop.items ??
          (typeof prop.additionalProperties === 'object' ? prop.additionalProperties : undefined) ??
          prop;
        for (const [k2, p2] of propertiesOf(inner)) {
          const bad = invalidValues(p2);
          if (!bad.length) continue;
          const value = r.pick(bad);
          const nested = prop.items ? [{ [k2]: value }] : { [k2]: value };
          cases.push({
            method,
            path: target(),
            body: { [key]: nested },
            why: `${key}.${k2}=${JSON.stringify(value).slice(0, 30)}`,
          });
        }
        if (typeof prop.additionalProperties === 'object') {
          const bad = invalidValues(prop.additionalProperties);
          for (const k2 of ['__proto__', 'constructor', 'aws:x', '\u0001']) {
            const value = bad.length ? r.pick(bad) : 1;
            cases.push({
              method,
              path: target(),
              raw: `{${JSON.stringify(key)}: {${JSON.stringify(k2)}: ${JSON.stringify(value)}}, "zzUnknown": 1}`,
              rawType: 'application/json',
              why: `${key} key ${k2}`,
            });
          }
        }
      }
      tag();
    }
  }
  // Query filters of the describe routes (the contracts' query schemas).
  const queryKeys = Object.keys(DescribeInstancesQuery.shape);
  for (const q of [
    ...PROTOTYPE_KEYS.map((s) => `state=${s}`),
    'state=running&state=stopped',
    'state=running,__proto__',
    'state=',
    'maxResults=1e400',
    'maxResults=-1',
    'maxResults=0',
    'maxResults=1.5',
    'maxResults=abc',
    'maxResults=99999999999999999999',
    'maxResults=1&maxResults=2',
    'instanceId=a&instanceId=b',
    'vpcId=constructor',
    'vpcId=vpc-1&vpcId=vpc-2',
    'subnetId=__proto__',
    'tag:Name=a&tag:Name=b',
    'tag:__proto__=a&tag:__proto__=b',
    ...queryKeys.map((k) => `${k}=1&${k}=2&${k}=3`),
  ]) {
    cases.push({ method: 'GET', path: `/v1/instances?${q}`, why: `query ${q}` });
  }
  for (const route of ['/v1/subnets', '/v1/security-groups']) {
    for (const q of [
      'vpcId=constructor',
      'vpcId=__proto__',
      'vpcId=a&vpcId=b',
      'vpcId=%00',
      `vpcId=${'v'.repeat(5000)}`,
    ]) {
      cases.push({ method: 'GET', path: `${route}?${q}`, why: `query ${q}` });
    }
  }
  return cases;
}

/**
 * Values that pass the request schema and must be refused by the service (EC2 error codes), on
 * resources that exist: these reach the services' look-up tables and address rules.
 */
function semanticCases(existing: { groupId: string; vpcId: string }): Case[] {
  const { groupId, vpcId } = existing;
  const cases: Case[] = [];
  for (const key of PROTOTYPE_KEYS) {
    for (const dir of ['ingress', 'egress', 'ingress/revoke', 'egress/revoke']) {
      cases.push({
        method: 'POST',
        path: `/v1/security-groups/${groupId}/${dir}`,
        body: { ipProtocol: key, fromPort: 1, toPort: 2, cidrIpv4: '192.0.2.0/24' },
        why: `ipProtocol ${key}`,
      });
      cases.push({
        method: 'POST',
        path: `/v1/security-groups/${groupId}/${dir}`,
        body: { ipProtocol: key, cidrIpv4: '192.0.2.0/24' },
        why: `ipProtocol ${key} without ports`,
      });
      cases.push({
        method: 'POST',
        path: `/v1/security-groups/${groupId}/${dir}`,
        body: { ipProtocol: 'tcp', fromPort: 1, toPort: 2, cidrIpv4: key.slice(0, 32) },
        why: `cidrIpv4 ${key}`,
      });
    }
    cases.push({
      method: 'POST',
      path: '/v1/key-pairs/import',
      body: { keyName: `k${key}`.replace(/[^A-Za-z0-9._-]/g, 'x'), publicKeyMaterial: key },
      why: `public key ${key}`,
    });
  }
  for (const body of [
    { cidr: '127.0.0.0/30' } as Json,
    { cidr: '224.0.0.0/28' },
    { cidr: '169.254.0.0/29' },
    { cidr: '0.0.0.0/30' },
    { firstIp: '255.255.255.254', lastIp: '255.255.255.255' },
    { firstIp: '192.0.2.9', lastIp: '192.0.2.1' },
    { cidr: '192.0.2.0/33' },
    { cidr: '999.0.0.0/8' },
    { firstIp: '1.2.3.4', lastIp: '1.2.3.400' },
    { cidr: '10.250.10.0/28' },
  ]) {
    cases.push({
      method: 'POST',
      path: '/v1/public-ipv4-pools',
      body,
      why: `pool ${JSON.stringify(body)}`,
    });
  }
  for (const cidrBlock of [
    '127.0.0.0/16',
    '8.8.0.0/16',
    '10.0.0.0/8',
    '10.0.0.0/29',
    '10.0.0.1/16',
    '300.0.0.0/16',
    '10.250.10.0/24',
  ]) {
    cases.push({ method: 'POST', path: '/v1/vpcs', body: { cidrBlock }, why: `vpc ${cidrBlock}` });
    cases.push({
      method: 'POST',
      path: '/v1/subnets',
      body: { vpcId, cidrBlock },
      why: `subnet ${cidrBlock}`,
    });
  }
  for (const instanceType of ['t3.micro', 'm5.large']) {
    cases.push({
      method: 'POST',
      path: '/v1/instance-types',
      body: { instanceType, family: 'general-purpose', vcpus: 1, memoryMiB: 512 },
      why: `built-in type ${instanceType}`,
    });
  }
  cases.push({ method: 'DELETE', path: `/v1/security-groups/${groupId}`, why: 'default group' });
  cases.push({ method: 'DELETE', path: `/v1/vpcs/${vpcId}`, why: 'default VPC in use' });
  return cases;
}

/** Every row of every table, as one comparable value. */
async function snapshotDatabase(h: Harness): Promise<Record<string, unknown[]>> {
  const tables = await h.db.$queryRawUnsafe<{ name: string }[]>(
    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
  );
  const out: Record<string, unknown[]> = {};
  for (const { name } of tables) {
    const rows = await h.db.$queryRawUnsafe<Record<string, unknown>[]>(`SELECT * FROM "${name}"`);
    out[name] = rows
      .map((row) => JSON.stringify(row, (_k, v) => (typeof v === 'bigint' ? String(v) : v)))
      .sort();
  }
  return out;
}

async function send(h: Harness, c: Case) {
  const headers: Record<string, string> = { authorization: `Bearer ${h.adminKey}` };
  let body: string | undefined;
  if (c.raw !== undefined) {
    body = c.raw;
    if (c.rawType) headers['content-type'] = c.rawType;
  } else if (c.body !== undefined) {
    body = JSON.stringify(c.body);
    headers['content-type'] = 'application/json';
  }
  const res = await fetch(`${h.baseUrl}${c.path}`, { method: c.method, headers, body });
  const text = await res.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.status, body: json };
}

describe('fuzz: malformed requests on every route', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startApiOnly({ networkCidr: '10.250.10.0/27' });
  });
  afterAll(async () => {
    await h?.close();
  });

  it('answers every one 4xx with {error: {code, message}} and changes nothing', async () => {
    const groups = await h.client.call('GET', '/v1/security-groups');
    const existing = { groupId: groups.securityGroups[0].groupId, vpcId: h.defaultVpc.vpcId };
    const cases = [...generateCases(SEED), ...semanticCases(existing)];
    expect(cases.length).toBeGreaterThanOrEqual(1000);
    const before = await snapshotDatabase(h);
    const jobsBefore = await h.queue.countJobs();

    const failures: string[] = [];
    const routes = new Set<string>();
    // A few at a time: concurrency is part of the test, the machine is small.
    for (let i = 0; i < cases.length; i += 8) {
      await Promise.all(
        cases.slice(i, i + 8).map(async (c) => {
          if (c.route) routes.add(c.route);
          const r = await send(h, c);
          const e = r.body?.error;
          const ok =
            r.status >= 400 &&
            r.status < 500 &&
            typeof e?.code === 'string' &&
            e.code.length > 0 &&
            typeof e?.message === 'string';
          if (!ok) {
            failures.push(
              `${c.method} ${c.path.slice(0, 80)} [${c.why}] -> ${r.status} ${JSON.stringify(r.body).slice(0, 160)}`,
            );
          }
        }),
      );
    }
    expect(failures).toEqual([]);
    expect(await snapshotDatabase(h)).toEqual(before);
    expect(await h.queue.countJobs()).toBe(jobsBefore);
    // Every route of the document that takes input was reached.
    expect([...inputRoutes].filter((r) => !routes.has(r))).toEqual([]);
    expect(inputRoutes.size).toBeGreaterThan(40);
    if (process.env.MINICLOUD_TEST_LOG)
      console.log(`${cases.length} requests, ${routes.size} routes`);
  });
});
