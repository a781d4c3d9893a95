import type { ServiceContext } from './context.js';
import { AddressService } from './addresses.js';
import { ImageService } from './images.js';
import { InstanceTypeService } from './instance-types.js';
import { InstanceService } from './instances/index.js';
import { KeyPairService } from './key-pairs.js';
import { NetworkService } from './networks.js';
import { SecurityGroupService } from './security-groups.js';
import { VolumeService } from './volumes.js';

export type Services = ReturnType<typeof createServices>;

/** Every service of the API over one context (the launch uses types, key pairs and volumes). */
export function createServices(ctx: ServiceContext) {
  const types = new InstanceTypeService(ctx);
  const keyPairs = new KeyPairService(ctx);
  const volumes = new VolumeService(ctx);
  return {
    images: new ImageService(ctx),
    types,
    keyPairs,
    volumes,
    instances: new InstanceService(ctx, types, keyPairs, volumes),
    networks: new NetworkService(ctx),
    addresses: new AddressService(ctx),
    groups: new SecurityGroupService(ctx),
  };
}
