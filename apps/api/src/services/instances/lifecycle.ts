import {
  errors,
  planTransition,
  stateOf,
  type InstanceAction,
  type InstanceState,
} from '@minicloud/domain';
import { findInstance, transitionInstance } from '@minicloud/db';
import { jobIds } from '@minicloud/queue';
import type { ServiceContext } from '../context.js';
import { instanceNotFound } from './view.js';
import { submitJob } from '../jobs.js';

/**
 * A lifecycle action (stop, start, reboot, terminate): one guarded state change in the database,
 * then one job whose id carries the new actionSeq.
 */
export async function applyInstanceAction(
  ctx: ServiceContext,
  instanceId: string,
  action: InstanceAction,
  options: { force?: boolean } = {},
) {
  const { db } = ctx;
  const instance = await findInstance(db, instanceId);
  if (!instance) throw instanceNotFound(instanceId);
  const previous = instance.state as InstanceState;
  const plan = planTransition(instanceId, previous, action);
  if (plan.kind === 'noop') {
    return { instanceId, previousState: stateOf(previous), currentState: stateOf(previous) };
  }
  const seq = instance.actionSeq + 1;
  const applied = await transitionInstance(
    db,
    { instanceId, from: previous, actionSeq: instance.actionSeq },
    {
      state: plan.to,
      actionSeq: seq,
      stateReason: action === 'stop' ? 'User initiated' : instance.stateReason,
    },
  );
  if (!applied) {
    throw errors.incorrectState(
      `The instance '${instanceId}' changed state concurrently; try again.`,
    );
  }
  const jobId = jobIds.instanceAction(instanceId, action, seq);
  if (action === 'stop') {
    await submitJob(ctx, 'instance.stop', { instanceId, force: options.force ?? false }, jobId);
  } else {
    await submitJob(ctx, `instance.${action}`, { instanceId }, jobId);
  }
  return { instanceId, previousState: stateOf(previous), currentState: stateOf(plan.to) };
}
