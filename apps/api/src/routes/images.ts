import { Router } from 'express';
import { CreateImageRequest, ImageId } from '@minicloud/contracts';
import { parse } from '../http.js';
import type { ImageService } from '../services/images.js';

export function imagesRouter(images: ImageService): Router {
  const r = Router();
  r.post('/images', async (req, res) => {
    res.status(202).json(await images.register(parse(CreateImageRequest, req.body)));
  });
  r.get('/images', async (_req, res) => {
    res.json({ images: await images.describe() });
  });
  r.get('/images/:imageId', async (req, res) => {
    res.json(await images.get(parse(ImageId, req.params.imageId)));
  });
  r.delete('/images/:imageId', async (req, res) => {
    res.status(202).json(await images.deregister(parse(ImageId, req.params.imageId)));
  });
  return r;
}
