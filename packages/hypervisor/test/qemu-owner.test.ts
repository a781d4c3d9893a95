import { parseQemuProcessOwner, qemuProcessOwner } from '../src/qemu-owner.js';

const DAC = `<capabilities><host>
    <secmodel>
      <model>none</model>
      <doi>0</doi>
    </secmodel>
    <secmodel>
      <model>dac</model>
      <doi>0</doi>
      <baselabel type='kvm'>+64055:+108</baselabel>
      <baselabel type='qemu'>+64055:+64055</baselabel>
    </secmodel>
  </host></capabilities>`;

describe('QEMU process owner from libvirt capabilities', () => {
  it('reads the DAC base label of the virt type', () => {
    expect(parseQemuProcessOwner(DAC, 'qemu')).toEqual({ uid: 64055, gid: 64055 });
    expect(parseQemuProcessOwner(DAC, 'kvm')).toEqual({ uid: 64055, gid: 108 });
    expect(parseQemuProcessOwner(DAC, 'test')).toEqual({ uid: 64055, gid: 108 });
  });

  it('is null without a DAC model (the test driver)', () => {
    const test = '<secmodel>\n<model>testSecurity</model>\n<doi></doi>\n</secmodel>';
    expect(parseQemuProcessOwner(test, 'test')).toBeNull();
  });

  it('refuses a label it cannot read rather than guessing', () => {
    const odd = DAC.replace(/\+64055:\+64055/, 'qemu:qemu');
    expect(() => parseQemuProcessOwner(odd, 'qemu')).toThrow(/DAC label/);
  });

  it('asks virsh for the capabilities of the connection', async () => {
    const calls: string[][] = [];
    const owner = await qemuProcessOwner('qemu:///system', 'qemu', async (cmd, args) => {
      calls.push([cmd, ...args]);
      return { stdout: DAC, stderr: '', exitCode: 0 };
    });
    expect(owner).toEqual({ uid: 64055, gid: 64055 });
    expect(calls).toEqual([['virsh', '-c', 'qemu:///system', 'capabilities']]);
  });
});
