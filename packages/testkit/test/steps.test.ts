import { StepChain } from '../src/steps.js';

describe('StepChain', () => {
  it('runs steps in order while they pass', async () => {
    const chain = new StepChain();
    const ran: string[] = [];
    await chain.run('one', async () => void ran.push('one'));
    await chain.run('two', async () => void ran.push('two'));
    expect({ ran, failed: chain.failed }).toEqual({ ran: ['one', 'two'], failed: null });
  });

  it('rethrows a failing step and then refuses the later ones, naming it', async () => {
    const chain = new StepChain();
    const ran: string[] = [];
    await expect(
      chain.run('boot', async () => {
        throw new Error('no SSH');
      }),
    ).rejects.toThrow('no SSH');
    await expect(chain.run('probe', async () => void ran.push('probe'))).rejects.toThrow(
      'not run: the earlier step "boot" failed',
    );
    expect({ ran, failed: chain.failed }).toEqual({ ran: [], failed: 'boot' });
  });
});
