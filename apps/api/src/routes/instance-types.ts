import { Router } from 'express';
import { CreateInstanceTypeRequest } from '@minicloud/contracts';
import { parse } from '../http.js';
import type { InstanceTypeService } from '../services/instance-types.js';

export function instanceTypesRouter(types: InstanceTypeService): Router {
  const r = Router();
  r.get('/instance-types', async (_req, res) => {
    res.json({ instanceTypes: await types.list() });
  });
  r.post('/instance-types', async (req, res) => {
    res.status(201).json(await types.create(parse(CreateInstanceTypeRequest, req.body)));
  });
  return r;
}
