import express, { type Request } from 'express';
import {
  CreateImageRequest,
  CreateInstanceTypeRequest,
  CreateKeyPairRequest,
  DescribeInstancesQuery,
  ImageId,
  ImportKeyPairRequest,
  InstanceId,
  KeyName,
  RunInstancesRequest,
  StopInstanceRequest,
  buildOpenApiDocument,
  CreateVolumeRequest,
  AttachVolumeRequest,
  DetachVolumeRequest,
  ModifyVolumeRequest,
  CreateSnapshotRequest,
  VolumeId,
  SnapshotId,
  AllocateAddressRequest,
  AllocationId,
  AssociateAddressRequest,
  CreateInternetGatewayRequest,
  CreatePublicIpv4PoolRequest,
  CreateSubnetRequest,
  CreateVpcRequest,
  DescribeSubnetsQuery,
  InternetGatewayAttachmentRequest,
  InternetGatewayId,
  ModifySubnetRequest,
  PublicIpv4PoolId,
  SubnetId,
  VpcId,
  CreateSecurityGroupRequest,
  DescribeSecurityGroupsQuery,
  ModifyInstanceSecurityGroupsRequest,
  RevokeSecurityGroupRulesRequest,
  SecurityGroupId,
  SecurityGroupRuleId,
  SecurityGroupRulesRequest,
} from '@minicloud/contracts';
import { errors } from '@minicloud/domain';
import { bearerAuth, errorMiddleware, parse } from './http.js';
import type { ServiceContext } from './services/context.js';
import { ImageService } from './services/images.js';
import { InstanceTypeService } from './services/instance-types.js';
import { InstanceService } from './services/instances.js';
import { KeyPairService } from './services/key-pairs.js';
import { VolumeService } from './services/volumes.js';
import { NetworkService } from './services/networks.js';
import { AddressService } from './services/addresses.js';
import { SecurityGroupService } from './services/security-groups.js';

export interface ApiDeps extends ServiceContext {
  adminKey: string;
  log: (msg: string, err?: unknown) => void;
}

/** Express app: thin routes that validate and hand over to services. */
export function createApiApp(deps: ApiDeps) {
  const images = new ImageService(deps);
  const types = new InstanceTypeService(deps);
  const keyPairs = new KeyPairService(deps);
  const volumes = new VolumeService(deps);
  const instances = new InstanceService(deps, types, keyPairs, volumes);
  const networks = new NetworkService(deps);
  const addresses = new AddressService(deps);
  const groups = new SecurityGroupService(deps);
  const openapi = buildOpenApiDocument();

  const app = express();
  app.disable('x-powered-by');
  app.set('query parser', 'simple');
  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.use('/v1', bearerAuth(deps.adminKey));
  app.use(express.json({ limit: '64kb', strict: true }));

  const v1 = express.Router();
  v1.get('/openapi.json', (_req, res) => {
    res.json(openapi);
  });

  v1.post('/images', async (req, res) => {
    res.status(202).json(await images.register(parse(CreateImageRequest, req.body)));
  });
  v1.get('/images', async (_req, res) => {
    res.json({ images: await images.describe() });
  });
  v1.get('/images/:imageId', async (req, res) => {
    res.json(await images.get(parse(ImageId, req.params.imageId)));
  });
  v1.delete('/images/:imageId', async (req, res) => {
    res.status(202).json(await images.deregister(parse(ImageId, req.params.imageId)));
  });

  v1.get('/instance-types', async (_req, res) => {
    res.json({ instanceTypes: await types.list() });
  });
  v1.post('/instance-types', async (req, res) => {
    res.status(201).json(await types.create(parse(CreateInstanceTypeRequest, req.body)));
  });

  v1.post('/key-pairs', async (req, res) => {
    const input = parse(CreateKeyPairRequest, req.body);
    res.status(201).json(await keyPairs.create(input.keyName, input.keyType));
  });
  v1.post('/key-pairs/import', async (req, res) => {
    const input = parse(ImportKeyPairRequest, req.body);
    res.status(201).json(await keyPairs.import(input.keyName, input.publicKeyMaterial));
  });
  v1.get('/key-pairs', async (_req, res) => {
    res.json({ keyPairs: await keyPairs.list() });
  });
  v1.delete('/key-pairs/:keyName', async (req, res) => {
    res.json(await keyPairs.delete(parse(KeyName, req.params.keyName)));
  });

  v1.post('/instances', async (req, res) => {
    res.status(202).json(await instances.run(parse(RunInstancesRequest, req.body)));
  });
  v1.get('/instances', async (req, res) => {
    const q = parse(DescribeInstancesQuery, req.query);
    res.json({
      instances: await instances.describe({
        state: q.state,
        instanceIds: q.instanceId?.split(',').filter(Boolean),
        tags: tagFilters(req),
        vpcId: q.vpcId,
        subnetId: q.subnetId,
        maxResults: q.maxResults,
      }),
    });
  });
  v1.get('/instances/:instanceId', async (req, res) => {
    res.json(await instances.get(parse(InstanceId, req.params.instanceId)));
  });
  v1.get('/instances/:instanceId/console', async (req, res) => {
    res.json(await instances.console(parse(InstanceId, req.params.instanceId)));
  });
  v1.post('/instances/:instanceId/stop', async (req, res) => {
    const body = parse(StopInstanceRequest, req.body ?? {});
    res
      .status(202)
      .json(await instances.act(parse(InstanceId, req.params.instanceId), 'stop', body));
  });
  for (const action of ['start', 'reboot'] as const) {
    v1.post(`/instances/:instanceId/${action}`, async (req, res) => {
      res.status(202).json(await instances.act(parse(InstanceId, req.params.instanceId), action));
    });
  }
  v1.delete('/instances/:instanceId', async (req, res) => {
    res
      .status(202)
      .json(await instances.act(parse(InstanceId, req.params.instanceId), 'terminate'));
  });

  v1.post('/vpcs', async (req, res) => {
    res.status(201).json(await networks.createVpc(parse(CreateVpcRequest, req.body)));
  });
  v1.get('/vpcs', async (_req, res) => {
    res.json({ vpcs: await networks.describeVpcs() });
  });
  v1.get('/vpcs/:vpcId', async (req, res) => {
    res.json(await networks.getVpc(parse(VpcId, req.params.vpcId)));
  });
  v1.delete('/vpcs/:vpcId', async (req, res) => {
    res.json(await networks.deleteVpc(parse(VpcId, req.params.vpcId)));
  });

  v1.post('/subnets', async (req, res) => {
    res.status(201).json(await networks.createSubnet(parse(CreateSubnetRequest, req.body)));
  });
  v1.get('/subnets', async (req, res) => {
    const q = parse(DescribeSubnetsQuery, req.query);
    res.json({ subnets: await networks.describeSubnets({ vpcId: q.vpcId }) });
  });
  v1.get('/subnets/:subnetId', async (req, res) => {
    res.json(await networks.getSubnet(parse(SubnetId, req.params.subnetId)));
  });
  v1.patch('/subnets/:subnetId', async (req, res) => {
    const body = parse(ModifySubnetRequest, req.body);
    res.json(await networks.modifySubnet(parse(SubnetId, req.params.subnetId), body));
  });
  v1.delete('/subnets/:subnetId', async (req, res) => {
    res.json(await networks.deleteSubnet(parse(SubnetId, req.params.subnetId)));
  });

  v1.post('/internet-gateways', async (req, res) => {
    const body = parse(CreateInternetGatewayRequest, req.body ?? {});
    res.status(201).json(await networks.createGateway(body));
  });
  v1.get('/internet-gateways', async (_req, res) => {
    res.json({ internetGateways: await networks.describeGateways() });
  });
  v1.get('/internet-gateways/:id', async (req, res) => {
    res.json(await networks.getGateway(parse(InternetGatewayId, req.params.id)));
  });
  v1.delete('/internet-gateways/:id', async (req, res) => {
    res.json(await networks.deleteGateway(parse(InternetGatewayId, req.params.id)));
  });
  for (const verb of ['attach', 'detach'] as const) {
    v1.post(`/internet-gateways/:id/${verb}`, async (req, res) => {
      const id = parse(InternetGatewayId, req.params.id);
      const { vpcId } = parse(InternetGatewayAttachmentRequest, req.body);
      res.json(
        verb === 'attach'
          ? await networks.attachGateway(id, vpcId)
          : await networks.detachGateway(id, vpcId),
      );
    });
  }

  v1.post('/public-ipv4-pools', async (req, res) => {
    res.status(201).json(await addresses.createPool(parse(CreatePublicIpv4PoolRequest, req.body)));
  });
  v1.get('/public-ipv4-pools', async (_req, res) => {
    res.json({ publicIpv4Pools: await addresses.describePools() });
  });
  v1.delete('/public-ipv4-pools/:poolId', async (req, res) => {
    res.json(await addresses.deletePool(parse(PublicIpv4PoolId, req.params.poolId)));
  });

  v1.post('/addresses', async (req, res) => {
    res.status(201).json(await addresses.allocate(parse(AllocateAddressRequest, req.body ?? {})));
  });
  v1.get('/addresses', async (_req, res) => {
    res.json({ addresses: await addresses.describe() });
  });
  v1.get('/addresses/:allocationId', async (req, res) => {
    res.json(await addresses.get(parse(AllocationId, req.params.allocationId)));
  });
  v1.delete('/addresses/:allocationId', async (req, res) => {
    res.json(await addresses.release(parse(AllocationId, req.params.allocationId)));
  });
  v1.post('/addresses/:allocationId/associate', async (req, res) => {
    const body = parse(AssociateAddressRequest, req.body);
    res.json(await addresses.associate(parse(AllocationId, req.params.allocationId), body));
  });
  v1.post('/addresses/:allocationId/disassociate', async (req, res) => {
    res.json(await addresses.disassociate(parse(AllocationId, req.params.allocationId)));
  });

  v1.post('/security-groups', async (req, res) => {
    res.status(201).json(await groups.create(parse(CreateSecurityGroupRequest, req.body)));
  });
  v1.get('/security-groups', async (req, res) => {
    const q = parse(DescribeSecurityGroupsQuery, req.query);
    res.json({ securityGroups: await groups.describe({ vpcId: q.vpcId }) });
  });
  v1.get('/security-groups/:groupId', async (req, res) => {
    res.json(await groups.get(parse(SecurityGroupId, req.params.groupId)));
  });
  v1.delete('/security-groups/:groupId', async (req, res) => {
    res.json(await groups.delete(parse(SecurityGroupId, req.params.groupId)));
  });
  for (const direction of ['ingress', 'egress'] as const) {
    const isEgress = direction === 'egress';
    v1.post(`/security-groups/:groupId/${direction}`, async (req, res) => {
      const id = parse(SecurityGroupId, req.params.groupId);
      const { rules } = parse(SecurityGroupRulesRequest, req.body);
      res.status(201).json(await groups.authorize(id, isEgress, rules));
    });
    // Revoke by rule (as EC2's RevokeSecurityGroupIngress) or by securityGroupRuleIds.
    v1.post(`/security-groups/:groupId/${direction}/revoke`, async (req, res) => {
      const id = parse(SecurityGroupId, req.params.groupId);
      res.json(await groups.revoke(id, isEgress, parse(RevokeSecurityGroupRulesRequest, req.body)));
    });
    v1.delete(`/security-groups/:groupId/${direction}`, async (req, res) => {
      const id = parse(SecurityGroupId, req.params.groupId);
      res.json(await groups.revoke(id, isEgress, parse(RevokeSecurityGroupRulesRequest, req.body)));
    });
  }
  v1.delete('/security-groups/:groupId/rules/:ruleId', async (req, res) => {
    const id = parse(SecurityGroupId, req.params.groupId);
    const ruleId = parse(SecurityGroupRuleId, req.params.ruleId);
    res.json(await groups.revoke(id, null, { securityGroupRuleIds: [ruleId] }));
  });
  v1.put('/instances/:instanceId/security-groups', async (req, res) => {
    const { securityGroupIds } = parse(ModifyInstanceSecurityGroupsRequest, req.body);
    res.json(
      await groups.setInstanceGroups(parse(InstanceId, req.params.instanceId), securityGroupIds),
    );
  });

  v1.post('/volumes', async (req, res) => {
    res.status(202).json(await volumes.create(parse(CreateVolumeRequest, req.body)));
  });
  v1.get('/volumes', async (_req, res) => {
    res.json({ volumes: await volumes.describe() });
  });
  v1.get('/volumes/:volumeId', async (req, res) => {
    res.json(await volumes.get(parse(VolumeId, req.params.volumeId)));
  });
  v1.delete('/volumes/:volumeId', async (req, res) => {
    res.status(202).json(await volumes.delete(parse(VolumeId, req.params.volumeId)));
  });
  v1.patch('/volumes/:volumeId', async (req, res) => {
    const { size } = parse(ModifyVolumeRequest, req.body);
    res.status(202).json(await volumes.modify(parse(VolumeId, req.params.volumeId), size));
  });
  v1.post('/volumes/:volumeId/attach', async (req, res) => {
    const body = parse(AttachVolumeRequest, req.body);
    res
      .status(202)
      .json(
        await volumes.attach(parse(VolumeId, req.params.volumeId), body.instanceId, body.device),
      );
  });
  v1.post('/volumes/:volumeId/detach', async (req, res) => {
    const body = parse(DetachVolumeRequest, req.body ?? {});
    res.status(202).json(await volumes.detach(parse(VolumeId, req.params.volumeId), body.force));
  });
  v1.post('/snapshots', async (req, res) => {
    const body = parse(CreateSnapshotRequest, req.body);
    res.status(202).json(await volumes.createSnapshot(body.volumeId, body.description, body.tags));
  });
  v1.get('/snapshots', async (_req, res) => {
    res.json({ snapshots: await volumes.describeSnapshots() });
  });
  v1.get('/snapshots/:snapshotId', async (req, res) => {
    res.json(await volumes.getSnapshot(parse(SnapshotId, req.params.snapshotId)));
  });
  v1.delete('/snapshots/:snapshotId', async (req, res) => {
    res.status(202).json(await volumes.deleteSnapshot(parse(SnapshotId, req.params.snapshotId)));
  });

  v1.use((req, _res, next) => {
    next(errors.notFound('InvalidAction', `No route for ${req.method} ${req.baseUrl}${req.path}.`));
  });
  app.use('/v1', v1);
  app.use((req, _res, next) => {
    next(errors.notFound('InvalidAction', `No route for ${req.method} ${req.path}.`));
  });
  app.use(errorMiddleware((msg, err) => deps.log(msg, err)));
  return app;
}

/** `tag:KEY=v1,v2` query filters, as EC2's Filter.N.Name=tag:KEY. */
function tagFilters(req: Request): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [name, value] of Object.entries(req.query)) {
    if (!name.startsWith('tag:')) continue;
    if (typeof value !== 'string')
      throw errors.invalidParameter(`Filter ${name} must be given once.`);
    out[name.slice(4)] = value.split(',').filter(Boolean);
  }
  return out;
}
