/**
 * Cost of the libvirt call guard (deadline + gate): listDomains over many domains and
 * sequential getState on a real connection, for gate sizes 1, 2, 4 and 16.
 *   node --import tsx scripts/bench-libvirt-calls.ts [qemu:///system|test:///default]
 * On test:///default it defines (and afterwards undefines) 300 domains prefixed mcb-.
 */
import { randomUUID } from 'node:crypto';
import { LibvirtHypervisor } from '@minicloud/hypervisor';

const uri = process.argv[2] ?? 'test:///default';
const prefix = `mcb${randomUUID().slice(0, 3)}-`;
const N = 300;

function median(xs: number[]): number {
  return [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
}

async function main() {
  const setup = new LibvirtHypervisor({ uri, maxConcurrentCalls: 16 });
  if (uri.startsWith('test:')) {
    for (let i = 0; i < N; i++) {
      await setup.ensureDefined({
        name: `${prefix}${i}`,
        uuid: randomUUID(),
        virtType: 'test',
        vcpus: 1,
        memoryMiB: 64,
        disks: [
          { path: `/tmp/minicloud-bench-nonexistent/${i}.qcow2`, format: 'qcow2', target: 'vda' },
        ],
        nics: [],
        consoleLogPath: `/tmp/minicloud-bench-nonexistent/${i}.log`,
        metadata: {
          instanceId: `i-${i.toString(16).padStart(17, '0')}`,
          instanceType: 't3.nano',
          imageId: 'ami-0123456789abcdef0',
        },
      });
    }
  }
  for (const size of [1, 2, 4, 16]) {
    const hv = new LibvirtHypervisor({ uri, maxConcurrentCalls: size });
    const lists: number[] = [];
    const states: number[] = [];
    for (let r = 0; r < 7; r++) {
      let t = performance.now();
      const n = (await hv.listDomains('')).length;
      lists.push(performance.now() - t);
      t = performance.now();
      for (let i = 0; i < 100; i++) await hv.getState(`${prefix}${i}`);
      states.push((performance.now() - t) / 100);
      if (r === 0) process.stdout.write(`gate ${size}: ${n} domains listed\n`);
    }
    process.stdout.write(
      `gate ${size}: listDomains median ${median(lists).toFixed(1)} ms, getState median ${median(states).toFixed(3)} ms\n`,
    );
    await hv.close();
  }
  if (uri.startsWith('test:')) for (let i = 0; i < N; i++) await setup.undefine(`${prefix}${i}`);
  await setup.close();
}

await main();
