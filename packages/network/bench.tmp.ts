import { run } from '@minicloud/host';
import { LinuxNetworkDriver } from '@minicloud/network';
const q = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!.toFixed(1);
const t: number[] = [];
for (let i = 0; i < 50; i++) {
  const t0 = performance.now();
  await run('true', []);
  t.push(performance.now() - t0);
}
console.log('run(true) p50', q(t));
const t2: number[] = [];
for (let i = 0; i < 50; i++) {
  const t0 = performance.now();
  await run('ip', ['-j', 'link', 'show', 'dev', 'lo']);
  t2.push(performance.now() - t0);
}
console.log('run(ip link show lo) p50', q(t2));
await run('ip', ['link', 'add', 'mtnzzbr0', 'type', 'bridge']);
const d = new LinuxNetworkDriver();
const spec = {
  bridge: 'mtnzzbr0',
  cidr: '10.252.0.0/24',
  gatewayIp: '10.252.0.1',
  stateDir: '/tmp/minicloud-test-bench/net',
  uplink: null,
  natTable: 'mtnzz_nat',
};
await d.ensureNetwork(spec);
const tp: number[] = [],
  tr: number[] = [];
const res: { mac: string; ip: string }[] = [];
for (let i = 0; i < 50; i++) {
  const mac = `52:54:00:00:01:${(i + 16).toString(16)}`;
  res.push({ mac, ip: `10.252.0.${i + 10}` });
  const t0 = performance.now();
  await d.ensurePort({ bridge: 'mtnzzbr0', tap: `mtnzzt${i}`, mac });
  const t1 = performance.now();
  await d.setReservations(spec, [...res]);
  const t3 = performance.now();
  tp.push(t1 - t0);
  tr.push(t3 - t1);
}
console.log('ensurePort p50', q(tp), 'setReservations p50', q(tr));
console.log(await d.removeNetwork(spec));
