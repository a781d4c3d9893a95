/**
 * Commands in test guests over SSH from the host (to their private addresses), and the checks
 * the e2e tests share: booted, identity service answering, a command (not) getting through.
 */
import type { MinicloudClient } from '@minicloud/client';
import { IDENTITY_PORT, INSTANCE_ID_FILE } from './guest-identity.js';
import { hostConnect } from './host-probes.js';
import { sshExec, waitForSsh } from './ssh.js';
import { until } from './wait.js';

/** A running test guest and the key that logs in to it. */
export interface Guest {
  name: string;
  instanceId: string;
  /** Its private address (the host reaches it directly). */
  ip: string;
  privateKey: string;
}

/** Run a command in a guest: its exit code and output (stdout and stderr together). */
export async function inGuest(guest: Guest, command: string) {
  const out = await sshExec(guest.ip, guest.privateKey, `${command} 2>&1; echo "rc=$?"`, 30_000);
  const m = /rc=(\d+)\s*$/.exec(out);
  if (!m) throw new Error(`no exit status from ${guest.name}: ${out}`);
  return { code: Number(m[1]), out: out.slice(0, m.index).trim() };
}

/** A guest command: open a TCP connection and print what the other side sends until it closes. */
export const tcpRead = (ip: string, port: number, seconds = 4) =>
  `timeout ${seconds} bash -c 'exec 3<>/dev/tcp/${ip}/${port} && cat <&3'`;

/** Poll until the command succeeds in the guest (and prints `expect` when given). */
export function untilInGuest(what: string, guest: Guest, command: string, expect?: string) {
  return until(
    what,
    async () => {
      const r = await inGuest(guest, command);
      if (r.code !== 0) throw new Error(`exit ${r.code}: ${r.out}`);
      if (expect !== undefined && r.out !== expect)
        throw new Error(`got ${JSON.stringify(r.out)}, want ${JSON.stringify(expect)}`);
      return r;
    },
    60_000,
  );
}

/** Poll until the command fails in the guest (e.g. a connection attempt once blocked). */
export function untilFailsInGuest(what: string, guest: Guest, command: string) {
  return until(what, async () => (await inGuest(guest, command)).code !== 0, 30_000);
}

/** The command must fail in the guest (nothing got through). */
export async function expectFailsInGuest(what: string, guest: Guest, command: string) {
  const r = await inGuest(guest, command);
  expect({ what, succeeded: r.code === 0, output: r.out }).toEqual({
    what,
    succeeded: false,
    output: expect.any(String),
  });
}

/** SSH answers, cloud-init (user-data included) has finished, and the guest knows its id. */
export async function waitUntilBooted(guest: Guest): Promise<void> {
  await waitForSsh(guest.ip, guest.privateKey, 'true', 240_000);
  await waitForSsh(
    guest.ip,
    guest.privateKey,
    'test -f /var/lib/cloud/instance/boot-finished',
    120_000,
  );
  expect(await sshExec(guest.ip, guest.privateKey, `cat ${INSTANCE_ID_FILE}`)).toBe(
    `${guest.instanceId}\n`,
  );
}

/**
 * Until the guest's identity service (guest-identity.ts) answers the host with its instance id;
 * returns that answer.
 */
export function untilIdentityAnswers(guest: Guest): Promise<string> {
  return until(
    `${guest.name}'s identity service (from the host)`,
    async () => {
      const answer = await hostConnect(guest.ip, IDENTITY_PORT);
      return answer === guest.instanceId ? answer : null;
    },
    30_000,
  );
}

/** Terminate the guests (all at once) and wait until each one is terminated. */
export async function terminateGuests(client: MinicloudClient, guests: Guest[]): Promise<void> {
  await Promise.all(guests.map((g) => client.call('DELETE', `/v1/instances/${g.instanceId}`)));
  await Promise.all(
    guests.map((g) => client.waitForInstanceState(g.instanceId, ['terminated'], 180_000)),
  );
}
