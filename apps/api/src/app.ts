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
} from '@minicloud/contracts';
import { errors } from '@minicloud/domain';
import { bearerAuth, errorMiddleware, parse } from './http.js';
import type { ServiceContext } from './services/context.js';
import { ImageService } from './services/images.js';
import { InstanceTypeService } from './services/instance-types.js';
import { InstanceService } from './services/instances.js';
import { KeyPairService } from './services/key-pairs.js';
import { VolumeService } from './services/volumes.js';

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
