/**
 * Names of everything minicloud creates on the host, derived from one configurable prefix so the
 * reconciler and the tests find exactly what is ours. Pure and validated.
 */
export const NAME_PREFIX = /^[a-z][a-z0-9]{1,4}$/;

export function assertNamePrefix(prefix: string): string {
  if (!NAME_PREFIX.test(prefix)) {
    throw new Error(
      `name prefix must match ${NAME_PREFIX} (2-5 chars), got ${JSON.stringify(prefix)}`,
    );
  }
  return prefix;
}

export function domainName(prefix: string, instanceId: string): string {
  return `${prefix}-${instanceId}`;
}

export function instanceIdFromDomainName(prefix: string, name: string): string | null {
  const m = new RegExp(`^${prefix}-(i-[0-9a-f]{17})$`).exec(name);
  return m?.[1] ?? null;
}

/** Linux interface names are at most 15 characters: prefix (<=5) + 't' + 9 hex. */
export function tapName(prefix: string, instanceId: string): string {
  return `${prefix}t${instanceId.slice(2, 11)}`;
}

export function defaultBridgeName(prefix: string): string {
  return `${prefix}br0`;
}
