import { KeyedLock } from '@minicloud/domain';

const tick = () => new Promise((r) => setTimeout(r, 5));

describe('KeyedLock', () => {
  test('same key: one at a time, in call order; other keys run alongside', async () => {
    const m = new KeyedLock();
    const log: string[] = [];
    let active = 0;
    let maxActive = 0;
    const job = (key: string, name: string) =>
      m.run(key, async () => {
        active++;
        maxActive = Math.max(maxActive, active);
        log.push(`start ${name}`);
        await tick();
        log.push(`end ${name}`);
        active--;
        return name;
      });
    const results = await Promise.all([
      job('a', 'a1'),
      job('a', 'a2'),
      job('b', 'b1'),
      job('a', 'a3'),
    ]);
    expect(results).toEqual(['a1', 'a2', 'b1', 'a3']);
    const aOnly = log.filter((l) => l.endsWith('a1') || l.endsWith('a2') || l.endsWith('a3'));
    expect(aOnly).toEqual(['start a1', 'end a1', 'start a2', 'end a2', 'start a3', 'end a3']);
    expect(maxActive).toBe(2); // a-something and b1
    expect(m.busyKeys).toEqual([]);
  });

  test('a failing holder releases the lock', async () => {
    const m = new KeyedLock();
    const p1 = m.run('k', async () => {
      throw new Error('boom');
    });
    const p2 = m.run('k', async () => 'ok');
    await expect(p1).rejects.toThrow('boom');
    await expect(p2).resolves.toBe('ok');
    expect(m.busyKeys).toEqual([]);
  });

  it('runs one operation per key at a time, different keys in parallel', async () => {
    const lock = new KeyedLock();
    const events: string[] = [];
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    const op = (key: string, name: string) =>
      lock.run(key, async () => {
        events.push(`start ${name}`);
        await sleep(20);
        events.push(`end ${name}`);
      });
    await Promise.all([op('i-1', 'a'), op('i-1', 'b'), op('i-2', 'c')]);
    expect(events.indexOf('end a')).toBeLessThan(events.indexOf('start b'));
    expect(events.indexOf('start c')).toBeLessThan(events.indexOf('end a'));
    expect(lock.isHeld('i-1')).toBe(false);
  });
});
