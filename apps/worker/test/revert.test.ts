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
