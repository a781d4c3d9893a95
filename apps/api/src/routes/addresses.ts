import { Router } from 'express';
import {
  AllocateAddressRequest,
  AllocationId,
  AssociateAddressRequest,
  CreatePublicIpv4PoolRequest,
  PublicIpv4PoolId,
} from '@minicloud/contracts';
import { parse } from '../http.js';
import type { AddressService } from '../services/addresses.js';

/** Public IPv4 pools (admin) and Elastic IPs. */
export function addressesRouter(addresses: AddressService): Router {
  const r = Router();
  r.post('/public-ipv4-pools', async (req, res) => {
    res.status(201).json(await addresses.createPool(parse(CreatePublicIpv4PoolRequest, req.body)));
  });
  r.get('/public-ipv4-pools', async (_req, res) => {
    res.json({ publicIpv4Pools: await addresses.describePools() });
  });
  r.delete('/public-ipv4-pools/:poolId', async (req, res) => {
    res.json(await addresses.deletePool(parse(PublicIpv4PoolId, req.params.poolId)));
  });

  r.post('/addresses', async (req, res) => {
    res.status(201).json(await addresses.allocate(parse(AllocateAddressRequest, req.body ?? {})));
  });
  r.get('/addresses', async (_req, res) => {
    res.json({ addresses: await addresses.describe() });
  });
  r.get('/addresses/:allocationId', async (req, res) => {
    res.json(await addresses.get(parse(AllocationId, req.params.allocationId)));
  });
  r.delete('/addresses/:allocationId', async (req, res) => {
    res.json(await addresses.release(parse(AllocationId, req.params.allocationId)));
  });
  r.post('/addresses/:allocationId/associate', async (req, res) => {
    const body = parse(AssociateAddressRequest, req.body);
    res.json(await addresses.associate(parse(AllocationId, req.params.allocationId), body));
  });
  r.post('/addresses/:allocationId/disassociate', async (req, res) => {
    res.json(await addresses.disassociate(parse(AllocationId, req.params.allocationId)));
  });
  return r;
}
