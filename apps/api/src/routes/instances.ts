import { Router, type Request } from 'express';
import {
  DescribeInstancesQuery,
  InstanceId,
  RunInstancesRequest,
  StopInstanceRequest,
} from '@minicloud/contracts';
import { errors } from '@minicloud/domain';
import { parse } from '../http.js';
import type { InstanceService } from '../services/instances/index.js';

export function instancesRouter(instances: InstanceService): Router {
  const r = Router();
  r.post('/instances', async (req, res) => {
    res.status(202).json(await instances.run(parse(RunInstancesRequest, req.body)));
  });
  r.get('/instances', async (req, res) => {
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
  r.get('/instances/:instanceId', async (req, res) => {
    res.json(await instances.get(parse(InstanceId, req.params.instanceId)));
  });
  r.get('/instances/:instanceId/console', async (req, res) => {
    res.json(await instances.console(parse(InstanceId, req.params.instanceId)));
  });
  r.post('/instances/:instanceId/stop', async (req, res) => {
    const body = parse(StopInstanceRequest, req.body ?? {});
    res
      .status(202)
      .json(await instances.act(parse(InstanceId, req.params.instanceId), 'stop', body));
  });
  for (const action of ['start', 'reboot'] as const) {
    r.post(`/instances/:instanceId/${action}`, async (req, res) => {
      res.status(202).json(await instances.act(parse(InstanceId, req.params.instanceId), action));
    });
  }
  r.delete('/instances/:instanceId', async (req, res) => {
    res
      .status(202)
      .json(await instances.act(parse(InstanceId, req.params.instanceId), 'terminate'));
  });
  return r;
}

/** `tag:KEY=v1,v2` query filters, as EC2's Filter.N.Name=tag:KEY. */
function tagFilters(req: Request): Map<string, string[]> {
  // A Map: a tag key such as '__proto__' is data, never an object's prototype.
  const out = new Map<string, string[]>();
  for (const [name, value] of Object.entries(req.query)) {
    if (!name.startsWith('tag:')) continue;
    if (typeof value !== 'string')
      throw errors.invalidParameter(`Filter ${name} must be given once.`);
    out.set(name.slice(4), value.split(',').filter(Boolean));
  }
  return out;
}
