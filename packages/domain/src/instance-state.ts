import { CloudError } from './errors.js';

/** EC2 instance states and their codes. */
export const INSTANCE_STATE_CODES = {
  pending: 0,
  running: 16,
  'shutting-down': 32,
  terminated: 48,
  stopping: 64,
  stopped: 80,
} as const;

export type InstanceState = keyof typeof INSTANCE_STATE_CODES;
export const INSTANCE_STATES = Object.keys(INSTANCE_STATE_CODES) as InstanceState[];

export type InstanceAction = 'stop' | 'start' | 'reboot' | 'terminate';

export function isInstanceState(value: string): value is InstanceState {
  // Own keys only: `in` would also accept 'constructor', '__proto__', 'toString', ...
  return Object.hasOwn(INSTANCE_STATE_CODES, value);
}

export function stateOf(name: string): { code: number; name: string } {
  return { code: isInstanceState(name) ? INSTANCE_STATE_CODES[name] : -1, name };
}

/** Which state an action moves an instance to, from which states it is allowed. */
const TRANSITIONS: Record<InstanceAction, { from: InstanceState[]; to: InstanceState }> = {
  stop: { from: ['running'], to: 'stopping' },
  start: { from: ['stopped'], to: 'pending' },
  reboot: { from: ['running'], to: 'running' },
  terminate: { from: ['pending', 'running', 'stopping', 'stopped'], to: 'shutting-down' },
};

/** States in which nothing more happens to the instance: the action is a no-op (EC2 behaviour). */
const NO_OP: Partial<Record<InstanceAction, InstanceState[]>> = {
  stop: ['stopped'],
  start: ['running'],
  terminate: ['shutting-down', 'terminated'],
};

export type TransitionResult = { kind: 'apply'; to: InstanceState } | { kind: 'noop' };

/**
 * Decide what an action does to an instance in `current` state. Throws IncorrectInstanceState
 * when the action is not allowed now (for example starting an instance that is stopping).
 */
export function planTransition(
  instanceId: string,
  current: InstanceState,
  action: InstanceAction,
): TransitionResult {
  if (NO_OP[action]?.includes(current)) return { kind: 'noop' };
  const rule = TRANSITIONS[action];
  if (!rule.from.includes(current)) {
    throw new CloudError(
      'IncorrectInstanceState',
      `The instance '${instanceId}' is not in a state from which it can be ${pastTense(action)} (it is ${current}).`,
      409,
    );
  }
  return { kind: 'apply', to: rule.to };
}

function pastTense(action: InstanceAction): string {
  return { stop: 'stopped', start: 'started', reboot: 'rebooted', terminate: 'terminated' }[action];
}

/** States in which a worker job is (or should be) in flight for the instance. */
export const TRANSITIONAL_STATES: InstanceState[] = ['pending', 'stopping', 'shutting-down'];
