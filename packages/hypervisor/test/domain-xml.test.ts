import { goldenFiles } from '@minicloud/testkit/golden';
import {
  buildDomainXml,
  domainConfigHash,
  HypervisorError,
  parseMinicloudMetadata,
  xmlEscape,
  xmlUnescape,
  type DomainSpec,
} from '../src/index.js';
import { sampleSpec } from './fixtures.js';

const golden = goldenFiles(import.meta.url);

describe('buildDomainXml', () => {
  it('renders a TCG (qemu) domain', () => {
    golden('domain-qemu.xml', buildDomainXml(sampleSpec()));
  });

  it('renders a KVM domain with host-passthrough', () => {
    golden('domain-kvm.xml', buildDomainXml(sampleSpec({ virtType: 'kvm' })));
  });

  it('renders a test-driver domain with one disk and no NIC', () => {
    const spec = sampleSpec({ virtType: 'test', nics: [] });
    spec.disks = spec.disks.slice(0, 1);
    golden('domain-test.xml', buildDomainXml(spec));
  });

  it('has nothing KVM-only in a TCG domain', () => {
    const xml = buildDomainXml(sampleSpec());
    expect(xml).toContain("<domain type='qemu'>");
    expect(xml).not.toMatch(/host-passthrough|host-model|<kvm>|type='kvm'/);
  });

  it('is deterministic and the hash follows the config', () => {
    expect(buildDomainXml(sampleSpec())).toBe(buildDomainXml(sampleSpec()));
    const a = domainConfigHash(sampleSpec());
    const b = domainConfigHash(sampleSpec({ memoryMiB: 1024 }));
    expect(a).toMatch(/^[0-9a-f]{64}$/);
    expect(a).not.toBe(b);
    expect(parseMinicloudMetadata(buildDomainXml(sampleSpec()))?.configHash).toBe(a);
  });

  it('lower-cases MAC addresses', () => {
    expect(buildDomainXml(sampleSpec())).toContain("<mac address='52:54:00:ab:cd:ef'/>");
  });

  const bad: [string, (s: DomainSpec) => void][] = [
    ['name with a quote', (s) => (s.name = "x'y")],
    ['name with <', (s) => (s.name = 'x<y')],
    ['empty name', (s) => (s.name = '')],
    ['uppercase uuid', (s) => (s.uuid = s.uuid.toUpperCase())],
    ['bad virtType', (s) => ((s as { virtType: string }).virtType = 'xen')],
    ['zero vcpus', (s) => (s.vcpus = 0)],
    ['fractional memory', (s) => (s.memoryMiB = 1.5)],
    ['no disks', (s) => (s.disks = [])],
    ['relative disk path', (s) => (s.disks[0]!.path = 'disk.qcow2')],
    ['disk path with ..', (s) => (s.disks[0]!.path = '/var/lib/../../etc/shadow')],
    ['disk path with quote', (s) => (s.disks[0]!.path = "/tmp/a'/>")],
    ['disk path with space', (s) => (s.disks[0]!.path = '/tmp/a b')],
    ['disk format vmdk', (s) => ((s.disks[0] as { format: string }).format = 'vmdk')],
    ['disk target sda', (s) => (s.disks[0]!.target = 'sda')],
    ['duplicate target', (s) => (s.disks[1]!.target = 'vda')],
    ['serial too long', (s) => (s.disks[0]!.serial = 'vol-0123456789abcdef0')],
    ['serial with <', (s) => (s.disks[0]!.serial = 'a<b')],
    ['tap too long', (s) => (s.nics[0]!.tap = 'abcdefghijklmnop')],
    ['tap with slash', (s) => (s.nics[0]!.tap = 'a/b')],
    ['multicast mac', (s) => (s.nics[0]!.mac = '01:00:5e:00:00:01')],
    ['short mac', (s) => (s.nics[0]!.mac = '52:54:00:ab:cd')],
    ['relative console path', (s) => (s.consoleLogPath = 'console.log')],
    ['bad instance id', (s) => (s.metadata.instanceId = 'i-xyz')],
    ['bad image id', (s) => (s.metadata.imageId = 'ami-<x>')],
    ['bad instance type', (s) => (s.metadata.instanceType = 't3 micro')],
  ];
  it.each(bad)('rejects %s', (_what, mutate) => {
    const spec = sampleSpec();
    mutate(spec);
    expect(() => buildDomainXml(spec)).toThrow(HypervisorError);
    try {
      buildDomainXml(spec);
    } catch (e) {
      expect((e as HypervisorError).code).toBe('InvalidDomainSpec');
    }
  });
});

describe('xmlEscape', () => {
  it('escapes the five special characters and round-trips', () => {
    const s = `a&b<c>d"e'f`;
    expect(xmlEscape(s)).toBe('a&amp;b&lt;c&gt;d&quot;e&apos;f');
    expect(xmlUnescape(xmlEscape(s))).toBe(s);
    expect(xmlUnescape('&#65;&#x42;')).toBe('AB');
  });
});

describe('parseMinicloudMetadata', () => {
  it('reads what buildDomainXml wrote', () => {
    expect(parseMinicloudMetadata(buildDomainXml(sampleSpec()))).toEqual({
      instanceId: 'i-0123456789abcdef0',
      instanceType: 't3.micro',
      imageId: 'ami-0123456789abcdef0',
      configHash: domainConfigHash(sampleSpec()),
    });
  });

  it('reads libvirt-reformatted XML with another prefix and quote style', () => {
    const xml = `<domain type='qemu' id='3'>
  <name>x</name>
  <metadata>
    <other:thing xmlns:other="https://example.com/x"><other:instanceId>i-ffffffffffffffff0</other:instanceId></other:thing>
    <mc:instance xmlns:mc='https://minicloud.dev/xmlns/instance/1'>
      <mc:instanceId>i-0123456789abcdef0</mc:instanceId>
      <mc:instanceType>t3.micro</mc:instanceType>
      <mc:imageId>ami-0123456789abcdef0</mc:imageId>
    </mc:instance>
  </metadata>
</domain>`;
    expect(parseMinicloudMetadata(xml)).toEqual({
      instanceId: 'i-0123456789abcdef0',
      instanceType: 't3.micro',
      imageId: 'ami-0123456789abcdef0',
      configHash: null,
    });
  });

  it('returns null for domains that are not ours or incomplete', () => {
    expect(parseMinicloudMetadata("<domain type='qemu'><name>x</name></domain>")).toBeNull();
    expect(
      parseMinicloudMetadata(
        `<metadata><m:instance xmlns:m="https://example.com/other"><m:instanceId>i-0123456789abcdef0</m:instanceId></m:instance></metadata>`,
      ),
    ).toBeNull();
    expect(
      parseMinicloudMetadata(
        `<metadata><m:instance xmlns:m="https://minicloud.dev/xmlns/instance/1"><m:instanceType>x</m:instanceType></m:instance></metadata>`,
      ),
    ).toBeNull();
  });
});
