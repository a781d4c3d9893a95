import { KeyedLock } from '../src/keyed-lock.js';
import { Revert } from '../src/revert.js';

describe('Revert', () => {
  it('undoes newest first and keeps going when an undo fails', async () => {
    const order: string[] = [];
    const logs: string[] = [];
    const r = new Revert();
    r.add('a', async () => void order.push('a'));
    r.add('b', async () => {
      throw new Error('boom');
    });
    r.add('c', async () => void order.push('c'));
    await r.undo((m) => logs.push(m));
    expect(order).toEqual(['c', 'a']);
    expect(logs).toEqual(['undo of b failed: boom']);
  });

  it('does nothing after success()', async () => {
    let undone = false;
    const r = new Revert();
    r.add('x', async () => void (undone = true));
    r.success();
    await r.undo();
    expect(undone).toBe(false);
  });
});

describe('KeyedLock', () => {
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
