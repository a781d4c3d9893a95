/**
 * Time per seed ISO written: in-process (writeSeedIso) vs the genisoimage process it replaced.
 *
 *   node --import tsx packages/cloudinit/bench/seed-iso.bench.ts [writes=200] [dir=/tmp]
 *
 * The two writers take turns, so load from elsewhere on the machine falls on both alike. Each
 * write is a fresh file, as each launch's is. The temp dir is removed at the end.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  buildSeedDocuments,
  buildSeedIso,
  writeSeedIso,
  type SeedDocuments,
} from '../src/index.js';
import { writeSeedIsoWithGenisoimage } from '../test/genisoimage.js';
import { ED25519 } from '../test/keys.js';

const writes = Number(process.argv[2] ?? 200);
const base = process.argv[3] ?? tmpdir();
const WARMUP = 10;

const docs: SeedDocuments = buildSeedDocuments({
  instanceId: 'i-0123456789abcdef0',
  hostname: 'ip-10-11-0-5',
  publicKeys: [ED25519],
  userData: Buffer.from('#!/bin/sh\necho "user-data ran for $(hostname)" > /root/proof\n'),
  mac: '52:54:00:ab:cd:ef',
});

type Writer = (path: string, docs: SeedDocuments) => Promise<unknown>;
const writers: [string, Writer][] = [
  ['in-process (writeSeedIso)', writeSeedIso],
  ['genisoimage process', writeSeedIsoWithGenisoimage],
  // The pure part alone: what a launch spends before the one write.
  ['buildSeedIso only (no I/O)', async (_path, d) => buildSeedIso(d)],
];

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
}

async function main(): Promise<void> {
  if (!Number.isInteger(writes) || writes < 1)
    throw new Error(`bad write count ${process.argv[2]}`);
  const dir = await mkdtemp(join(base, 'minicloud-bench-seed-'));
  const times = new Map<string, number[]>(writers.map(([name]) => [name, []]));
  try {
    for (let i = -WARMUP; i < writes; i++) {
      for (const [name, write] of writers) {
        const path = join(dir, `${name.split(' ')[0]}-${i}.iso`);
        const t = performance.now();
        await write(path, docs);
        if (i >= 0) times.get(name)!.push(performance.now() - t);
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }

  console.log(`seed ISO writes: ${writes} each (after ${WARMUP} warm-up), in ${base}`);
  const p50s = new Map<string, number>();
  for (const [name, list] of times) {
    const sorted = [...list].sort((a, b) => a - b);
    const mean = list.reduce((s, t) => s + t, 0) / list.length;
    p50s.set(name, quantile(sorted, 0.5));
    console.log(
      `  ${name.padEnd(28)} p50 ${quantile(sorted, 0.5).toFixed(2).padStart(7)} ms` +
        `  p95 ${quantile(sorted, 0.95).toFixed(2).padStart(7)} ms` +
        `  mean ${mean.toFixed(2).padStart(7)} ms  max ${sorted.at(-1)!.toFixed(2).padStart(7)} ms`,
    );
  }
  const [ours, theirs] = writers.map(([name]) => p50s.get(name)!);
  console.log(`  in-process is ${(theirs! / ours!).toFixed(1)}x faster at p50`);
}

await main();
