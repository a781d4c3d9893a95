import { run } from '@minicloud/host';
import {
  dataDirExposure,
  defaultImage,
  filesReadableByNobody,
  hostLeftovers,
  sshExec,
  startMinicloud,
  waitForSsh,
  type MinicloudUnderTest,
} from '@minicloud/testkit';

async function domainState(mc: MinicloudUnderTest, instanceId: string): Promise<string> {
  const r = await run('virsh', ['-c', 'qemu:///system', 'domstate', `${mc.prefix}-${instanceId}`], {
    okExitCodes: [1],
  });
  return r.stdout.trim();
}

describe('an instance from API call to SSH and back to nothing', () => {
  let mc: MinicloudUnderTest;
  afterAll(async () => {
    await mc?.destroy();
    if (mc) {
      expect(await hostLeftovers(mc.prefix, mc.dataDir, { includeNetwork: true })).toEqual({
        domains: [],
        links: [],
        instanceDirs: [],
        tables: [],
        dnsmasq: [],
      });
    }
  });

  it('launches, runs user-data, survives stop/start and reboot, terminates cleanly', async () => {
    mc = await startMinicloud();
    const image = await defaultImage(mc);
    expect(image.checksumSha256).toMatch(/^[0-9a-f]{64}$/);
    expect(image.virtualSize).toBeGreaterThan(0);

    const key = await mc.client.createKeyPair('e2e-key');
    const userData = '#!/bin/sh\necho "user-data ran for $(hostname)" > /root/user-data-proof\n';
    const launched = await mc.client.runInstances({
      imageId: image.imageId,
      instanceType: 't3.nano',
      keyName: 'e2e-key',
      userData: Buffer.from(userData).toString('base64'),
      tags: { Name: 'e2e' },
    });
    const id = launched.instances[0].instanceId;
    expect(launched.instances[0].state).toEqual({ code: 0, name: 'pending' });

    const running = await mc.client.waitForInstanceState(id, ['running'], 120_000);
    const ip = running.privateIpAddress;
    expect(await domainState(mc, id)).toBe('running');

    const hostname = (await waitForSsh(ip, key.keyMaterial, 'hostname', 180_000)).trim();
    // User-data runs after sshd starts (as cloud-init's final stage): wait for boot-finished.
    await waitForSsh(ip, key.keyMaterial, 'test -f /var/lib/cloud/instance/boot-finished', 60_000);
    expect(hostname).toBe(`ip-${ip.replaceAll('.', '-')}`);
    expect(await sshExec(ip, key.keyMaterial, 'cat /root/user-data-proof')).toBe(
      `user-data ran for ${hostname}\n`,
    );
    await sshExec(ip, key.keyMaterial, 'echo persisted-across-stop > /root/marker && sync');

    // Guest data (image, root overlay, seed with user-data, console log, database) is private
    // while the guest runs from it: QEMU reaches its files, no other user can read them.
    expect(await dataDirExposure(mc.dataDir)).toEqual([]);
    expect(await filesReadableByNobody(mc.dataDir)).toEqual([]);

    const console = await mc.client.call('GET', `/v1/instances/${id}/console`);
    expect(Buffer.from(console.output, 'base64').toString()).toContain('Linux version');

    // Stop (graceful ACPI shutdown) and start: the disk keeps the file, the IP stays.
    await mc.client.call('POST', `/v1/instances/${id}/stop`, {});
    await mc.client.waitForInstanceState(id, ['stopped'], 120_000);
    expect(await domainState(mc, id)).toBe('shut off');
    await mc.client.call('POST', `/v1/instances/${id}/start`);
    const restarted = await mc.client.waitForInstanceState(id, ['running'], 120_000);
    expect(restarted.privateIpAddress).toBe(ip);
    expect(await waitForSsh(ip, key.keyMaterial, 'cat /root/marker', 180_000)).toBe(
      'persisted-across-stop\n',
    );
    // user-data runs once per instance, not on every boot.
    expect(await sshExec(ip, key.keyMaterial, 'cat /root/user-data-proof')).toBe(
      `user-data ran for ${hostname}\n`,
    );

    // Reboot: a new boot id, same instance, still running.
    const bootBefore = await sshExec(ip, key.keyMaterial, 'cat /proc/sys/kernel/random/boot_id');
    await mc.client.call('POST', `/v1/instances/${id}/reboot`);
    const deadline = Date.now() + 180_000;
    let bootAfter = bootBefore;
    while (bootAfter === bootBefore && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 500));
      bootAfter = await sshExec(
        ip,
        key.keyMaterial,
        'cat /proc/sys/kernel/random/boot_id',
        5_000,
      ).catch(() => bootBefore);
    }
    expect(bootAfter).not.toBe(bootBefore);
    expect((await mc.client.describeInstance(id)).state.name).toBe('running');

    // A guest that powers itself off is observed by the reconciler and becomes stopped.
    await sshExec(ip, key.keyMaterial, 'poweroff', 5_000).catch(() => {});
    const selfStopped = await mc.client.waitForInstanceState(id, ['stopped'], 120_000);
    expect(selfStopped.stateReason).toMatch(/InstanceInitiatedShutdown/);

    // Terminate: the instance stays visible as terminated; its host objects are gone.
    await mc.client.call('DELETE', `/v1/instances/${id}`);
    const terminated = await mc.client.waitForInstanceState(id, ['terminated'], 120_000);
    expect(terminated.state.code).toBe(48);
    expect(await hostLeftovers(mc.prefix, mc.dataDir, { includeNetwork: false })).toEqual({
      domains: [],
      links: [],
      instanceDirs: [],
    });
  });
});
