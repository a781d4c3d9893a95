import type { DomainSpec } from '../src/index.js';

/** A typical spec: root disk, seed ISO, one NIC. */
export function sampleSpec(overrides: Partial<DomainSpec> = {}): DomainSpec {
  return {
    name: 'mc-i-0123456789abcdef0',
    uuid: '0b9c6f4e-3e0a-4c59-9d3b-1a2b3c4d5e6f',
    virtType: 'qemu',
    vcpus: 2,
    memoryMiB: 512,
    disks: [
      {
        path: '/var/lib/minicloud/disks/i-0123456789abcdef0-root.qcow2',
        format: 'qcow2',
        target: 'vda',
        serial: 'vol0123456789abcdef0',
      },
      {
        path: '/var/lib/minicloud/seeds/i-0123456789abcdef0.iso',
        format: 'raw',
        target: 'vdb',
        readOnly: true,
      },
    ],
    nics: [{ tap: 'mct0123456789', mac: '52:54:00:AB:CD:EF' }],
    consoleLogPath: '/var/lib/minicloud/console/i-0123456789abcdef0.log',
    metadata: {
      instanceId: 'i-0123456789abcdef0',
      instanceType: 't3.micro',
      imageId: 'ami-0123456789abcdef0',
    },
    ...overrides,
  };
}
