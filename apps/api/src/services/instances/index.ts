import type { InstanceAction } from '@minicloud/domain';
import type { RunInstancesInput } from '@minicloud/contracts';
import type { ServiceContext } from '../context.js';
import type { InstanceTypeService } from '../instance-types.js';
import type { KeyPairService } from '../key-pairs.js';
import type { VolumeService } from '../volumes.js';
import { consoleOutput } from './console.js';
import { InstanceLauncher } from './launch.js';
import { applyInstanceAction } from './lifecycle.js';
import { describeInstances, getInstance, type InstanceFilters } from './view.js';

export { presentInstance, type BlockDeviceMappingView, type InstanceView } from './view.js';

/** Instances: launch (launch.ts), view (view.ts), lifecycle (lifecycle.ts), console (console.ts). */
export class InstanceService {
  private readonly launcher: InstanceLauncher;

  constructor(
    private readonly ctx: ServiceContext,
    types: InstanceTypeService,
    keyPairs: KeyPairService,
    volumes: VolumeService,
  ) {
    this.launcher = new InstanceLauncher(ctx, types, keyPairs, volumes);
  }

  run(input: RunInstancesInput) {
    return this.launcher.run(input);
  }

  describe(filters: InstanceFilters) {
    return describeInstances(this.ctx, filters);
  }

  get(instanceId: string) {
    return getInstance(this.ctx, instanceId);
  }

  act(instanceId: string, action: InstanceAction, options: { force?: boolean } = {}) {
    return applyInstanceAction(this.ctx, instanceId, action, options);
  }

  console(instanceId: string) {
    return consoleOutput(this.ctx, instanceId);
  }
}
