import { Batcher } from '@minicloud/domain';

const tick = () => new Promise((r) => setTimeout(r, 5));

describe('Batcher', () => {
  test('the first call flushes alone; calls during a flush share the next one', async () => {
    const flushes: number[][] = [];
    const b = new Batcher<number, number>(async (items) => {
      flushes.push([...items]);
      await tick();
      return items.map((n) => ({ status: 'fulfilled' as const, value: n * 10 }));
    });
    const results = await Promise.all([1, 2, 3, 4].map((n) => b.add(n)));
    expect(results).toEqual([10, 20, 30, 40]);
    expect(flushes).toEqual([[1], [2, 3, 4]]);
  });

  test('each item has its own outcome; a throwing flush fails its whole batch only', async () => {
    let calls = 0;
    const b = new Batcher<number, number>(async (items) => {
      calls++;
      await tick();
      if (items.includes(99)) throw new Error('flush failed');
      return items.map((n) =>
        n < 0
          ? { status: 'rejected' as const, reason: new Error(`bad ${n}`) }
          : { status: 'fulfilled' as const, value: n },
      );
    });
    const first = b.add(1);
    const bad = b.add(-1);
    const good = b.add(2);
    await expect(first).resolves.toBe(1);
    await expect(bad).rejects.toThrow('bad -1');
    await expect(good).resolves.toBe(2);
    await expect(b.add(99)).rejects.toThrow('flush failed');
    await expect(b.add(3)).resolves.toBe(3);
    expect(calls).toBe(4);
  });
});
