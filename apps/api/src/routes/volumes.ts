import { Router } from 'express';
import {
  AttachVolumeRequest,
  CreateSnapshotRequest,
  CreateVolumeRequest,
  DetachVolumeRequest,
  ModifyVolumeRequest,
  SnapshotId,
  VolumeId,
} from '@minicloud/contracts';
import { parse } from '../http.js';
import type { VolumeService } from '../services/volumes.js';

/** Volumes and their snapshots. */
export function volumesRouter(volumes: VolumeService): Router {
  const r = Router();
  r.post('/volumes', async (req, res) => {
    res.status(202).json(await volumes.create(parse(CreateVolumeRequest, req.body)));
  });
  r.get('/volumes', async (_req, res) => {
    res.json({ volumes: await volumes.describe() });
  });
  r.get('/volumes/:volumeId', async (req, res) => {
    res.json(await volumes.get(parse(VolumeId, req.params.volumeId)));
  });
  r.delete('/volumes/:volumeId', async (req, res) => {
    res.status(202).json(await volumes.delete(parse(VolumeId, req.params.volumeId)));
  });
  r.patch('/volumes/:volumeId', async (req, res) => {
    const { size } = parse(ModifyVolumeRequest, req.body);
    res.status(202).json(await volumes.modify(parse(VolumeId, req.params.volumeId), size));
  });
  r.post('/volumes/:volumeId/attach', async (req, res) => {
    const body = parse(AttachVolumeRequest, req.body);
    res
      .status(202)
      .json(
        await volumes.attach(parse(VolumeId, req.params.volumeId), body.instanceId, body.device),
      );
  });
  r.post('/volumes/:volumeId/detach', async (req, res) => {
    const body = parse(DetachVolumeRequest, req.body ?? {});
    res.status(202).json(await volumes.detach(parse(VolumeId, req.params.volumeId), body.force));
  });

  r.post('/snapshots', async (req, res) => {
    const body = parse(CreateSnapshotRequest, req.body);
    res.status(202).json(await volumes.createSnapshot(body.volumeId, body.description, body.tags));
  });
  r.get('/snapshots', async (_req, res) => {
    res.json({ snapshots: await volumes.describeSnapshots() });
  });
  r.get('/snapshots/:snapshotId', async (req, res) => {
    res.json(await volumes.getSnapshot(parse(SnapshotId, req.params.snapshotId)));
  });
  r.delete('/snapshots/:snapshotId', async (req, res) => {
    res.status(202).json(await volumes.deleteSnapshot(parse(SnapshotId, req.params.snapshotId)));
  });
  return r;
}
