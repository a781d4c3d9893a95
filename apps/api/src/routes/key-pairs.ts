import { Router } from 'express';
import { CreateKeyPairRequest, ImportKeyPairRequest, KeyName } from '@minicloud/contracts';
import { parse } from '../http.js';
import type { KeyPairService } from '../services/key-pairs.js';

export function keyPairsRouter(keyPairs: KeyPairService): Router {
  const r = Router();
  r.post('/key-pairs', async (req, res) => {
    const input = parse(CreateKeyPairRequest, req.body);
    res.status(201).json(await keyPairs.create(input.keyName, input.keyType));
  });
  r.post('/key-pairs/import', async (req, res) => {
    const input = parse(ImportKeyPairRequest, req.body);
    res.status(201).json(await keyPairs.import(input.keyName, input.publicKeyMaterial));
  });
  r.get('/key-pairs', async (_req, res) => {
    res.json({ keyPairs: await keyPairs.list() });
  });
  r.delete('/key-pairs/:keyName', async (req, res) => {
    res.json(await keyPairs.delete(parse(KeyName, req.params.keyName)));
  });
  return r;
}
