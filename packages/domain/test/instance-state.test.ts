import { CloudError, INSTANCE_STATE_CODES, planTransition, stateOf } from '../src/index.js';

describe('instance state machine', () => {
  it('uses EC2 state codes', () => {
    expect(INSTANCE_STATE_CODES).toEqual({
      pending: 0,
      running: 16,
      'shutting-down': 32,
      terminated: 48,
      stopping: 64,
      stopped: 80,
    });
    expect(stateOf('stopped')).toEqual({ code: 80, name: 'stopped' });
  });

  it.each([
    ['running', 'stop', 'stopping'],
    ['stopped', 'start', 'pending'],
    ['running', 'reboot', 'running'],
    ['running', 'terminate', 'shutting-down'],
    ['pending', 'terminate', 'shutting-down'],
    ['stopped', 'terminate', 'shutting-down'],
  ] as const)('%s + %s -> %s', (from, action, to) => {
    expect(planTransition('i-0', from, action)).toEqual({ kind: 'apply', to });
  });

  it.each([
    ['stopped', 'stop'],
    ['running', 'start'],
    ['terminated', 'terminate'],
    ['shutting-down', 'terminate'],
  ] as const)('%s + %s is a no-op', (from, action) => {
    expect(planTransition('i-0', from, action)).toEqual({ kind: 'noop' });
  });

  it.each([
    ['pending', 'stop'],
    ['stopping', 'start'],
    ['terminated', 'start'],
    ['stopped', 'reboot'],
    ['terminated', 'stop'],
  ] as const)('%s + %s is refused with IncorrectInstanceState', (from, action) => {
    try {
      planTransition('i-0123', from, action);
      throw new Error('expected a refusal');
    } catch (e) {
      expect(e).toBeInstanceOf(CloudError);
      expect((e as CloudError).code).toBe('IncorrectInstanceState');
      expect((e as CloudError).status).toBe(409);
    }
  });
});
