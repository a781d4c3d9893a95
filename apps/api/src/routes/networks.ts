import { Router } from 'express';
import {
  CreateInternetGatewayRequest,
  CreateSubnetRequest,
  CreateVpcRequest,
  DescribeSubnetsQuery,
  InternetGatewayAttachmentRequest,
  InternetGatewayId,
  ModifySubnetRequest,
  SubnetId,
  VpcId,
} from '@minicloud/contracts';
import { parse } from '../http.js';
import type { NetworkService } from '../services/networks.js';

/** VPCs, subnets and internet gateways. */
export function networksRouter(networks: NetworkService): Router {
  const r = Router();
  r.post('/vpcs', async (req, res) => {
    res.status(201).json(await networks.createVpc(parse(CreateVpcRequest, req.body)));
  });
  r.get('/vpcs', async (_req, res) => {
    res.json({ vpcs: await networks.describeVpcs() });
  });
  r.get('/vpcs/:vpcId', async (req, res) => {
    res.json(await networks.getVpc(parse(VpcId, req.params.vpcId)));
  });
  r.delete('/vpcs/:vpcId', async (req, res) => {
    res.json(await networks.deleteVpc(parse(VpcId, req.params.vpcId)));
  });

  r.post('/subnets', async (req, res) => {
    res.status(201).json(await networks.createSubnet(parse(CreateSubnetRequest, req.body)));
  });
  r.get('/subnets', async (req, res) => {
    const q = parse(DescribeSubnetsQuery, req.query);
    res.json({ subnets: await networks.describeSubnets({ vpcId: q.vpcId }) });
  });
  r.get('/subnets/:subnetId', async (req, res) => {
    res.json(await networks.getSubnet(parse(SubnetId, req.params.subnetId)));
  });
  r.patch('/subnets/:subnetId', async (req, res) => {
    const body = parse(ModifySubnetRequest, req.body);
    res.json(await networks.modifySubnet(parse(SubnetId, req.params.subnetId), body));
  });
  r.delete('/subnets/:subnetId', async (req, res) => {
    res.json(await networks.deleteSubnet(parse(SubnetId, req.params.subnetId)));
  });

  r.post('/internet-gateways', async (req, res) => {
    const body = parse(CreateInternetGatewayRequest, req.body ?? {});
    res.status(201).json(await networks.createGateway(body));
  });
  r.get('/internet-gateways', async (_req, res) => {
    res.json({ internetGateways: await networks.describeGateways() });
  });
  r.get('/internet-gateways/:id', async (req, res) => {
    res.json(await networks.getGateway(parse(InternetGatewayId, req.params.id)));
  });
  r.delete('/internet-gateways/:id', async (req, res) => {
    res.json(await networks.deleteGateway(parse(InternetGatewayId, req.params.id)));
  });
  for (const verb of ['attach', 'detach'] as const) {
    r.post(`/internet-gateways/:id/${verb}`, async (req, res) => {
      const id = parse(InternetGatewayId, req.params.id);
      const { vpcId } = parse(InternetGatewayAttachmentRequest, req.body);
      res.json(
        verb === 'attach'
          ? await networks.attachGateway(id, vpcId)
          : await networks.detachGateway(id, vpcId),
      );
    });
  }
  return r;
}
