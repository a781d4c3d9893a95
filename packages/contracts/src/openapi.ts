import { z } from 'zod';
import * as req from './requests.js';

const body = (schema: z.ZodType) => ({
  required: true,
  content: { 'application/json': { schema: z.toJSONSchema(schema, { io: 'input' }) } },
});
const idParam = (name: string) => ({
  name,
  in: 'path',
  required: true,
  schema: { type: 'string' },
});
const ok = (description: string) => ({ description });
const errorsOf = { '4XX': { description: 'EC2-like error: {error: {code, message}}' } };

/** The OpenAPI 3.1 document served at /v1/openapi.json, built from the same zod schemas. */
export function buildOpenApiDocument(): Record<string, unknown> {
  const op = (summary: string, extra: Record<string, unknown> = {}) => ({
    summary,
    security: [{ bearer: [] }],
    responses: { '200': ok('OK'), ...errorsOf },
    ...extra,
  });
  return {
    openapi: '3.1.0',
    info: { title: 'minicloud API', version: '1' },
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    paths: {
      '/v1/images': {
        get: op('Describe images'),
        post: op('Register an image from a local path or http(s) URL', {
          requestBody: body(req.CreateImageRequest),
        }),
      },
      '/v1/images/{imageId}': {
        get: op('Describe one image', { parameters: [idParam('imageId')] }),
        delete: op('Deregister an image', { parameters: [idParam('imageId')] }),
      },
      '/v1/instance-types': {
        get: op('Describe instance types'),
        post: op('Add a custom instance type', {
          requestBody: body(req.CreateInstanceTypeRequest),
        }),
      },
      '/v1/key-pairs': {
        get: op('Describe key pairs'),
        post: op('Create a key pair (private key returned once)', {
          requestBody: body(req.CreateKeyPairRequest),
        }),
      },
      '/v1/key-pairs/import': {
        post: op('Import a public key', { requestBody: body(req.ImportKeyPairRequest) }),
      },
      '/v1/key-pairs/{keyName}': {
        delete: op('Delete a key pair', { parameters: [idParam('keyName')] }),
      },
      '/v1/instances': {
        get: op('Describe instances (filters: state, instanceId, tag:KEY)'),
        post: op('Run instances', { requestBody: body(req.RunInstancesRequest) }),
      },
      '/v1/instances/{instanceId}': {
        get: op('Describe one instance', { parameters: [idParam('instanceId')] }),
        delete: op('Terminate an instance', { parameters: [idParam('instanceId')] }),
      },
      '/v1/instances/{instanceId}/stop': {
        post: op('Stop an instance', {
          parameters: [idParam('instanceId')],
          requestBody: body(req.StopInstanceRequest),
        }),
      },
      '/v1/instances/{instanceId}/start': {
        post: op('Start an instance', { parameters: [idParam('instanceId')] }),
      },
      '/v1/instances/{instanceId}/reboot': {
        post: op('Reboot an instance', { parameters: [idParam('instanceId')] }),
      },
      '/v1/instances/{instanceId}/console': {
        get: op('Serial console output (base64, as EC2), read by a worker', {
          parameters: [idParam('instanceId')],
          responses: {
            '200': ok('OK'),
            ...errorsOf,
            '503': { description: 'ServiceUnavailable: no worker answered in time' },
          },
        }),
      },
      '/v1/vpcs': {
        post: op('Create a VPC', { requestBody: body(req.CreateVpcRequest) }),
        get: op('Describe VPCs'),
      },
      '/v1/vpcs/{vpcId}': {
        get: op('Describe one VPC', { parameters: [idParam('vpcId')] }),
        delete: op('Delete a VPC', { parameters: [idParam('vpcId')] }),
      },
      '/v1/subnets': {
        post: op('Create a subnet', { requestBody: body(req.CreateSubnetRequest) }),
        get: op('Describe subnets (?vpcId=)'),
      },
      '/v1/subnets/{subnetId}': {
        get: op('Describe one subnet', { parameters: [idParam('subnetId')] }),
        patch: op('Modify a subnet', {
          parameters: [idParam('subnetId')],
          requestBody: body(req.ModifySubnetRequest),
        }),
        delete: op('Delete a subnet', { parameters: [idParam('subnetId')] }),
      },
      '/v1/internet-gateways': {
        post: op('Create an internet gateway', {
          requestBody: body(req.CreateInternetGatewayRequest),
        }),
        get: op('Describe internet gateways'),
      },
      '/v1/internet-gateways/{internetGatewayId}': {
        get: op('Describe one internet gateway', { parameters: [idParam('internetGatewayId')] }),
        delete: op('Delete an internet gateway', { parameters: [idParam('internetGatewayId')] }),
      },
      '/v1/internet-gateways/{internetGatewayId}/attach': {
        post: op('Attach to a VPC', {
          parameters: [idParam('internetGatewayId')],
          requestBody: body(req.InternetGatewayAttachmentRequest),
        }),
      },
      '/v1/internet-gateways/{internetGatewayId}/detach': {
        post: op('Detach from a VPC', {
          parameters: [idParam('internetGatewayId')],
          requestBody: body(req.InternetGatewayAttachmentRequest),
        }),
      },
      '/v1/public-ipv4-pools': {
        post: op('Add a pool of public addresses (admin)', {
          requestBody: body(req.CreatePublicIpv4PoolRequest),
        }),
        get: op('Describe public address pools'),
      },
      '/v1/public-ipv4-pools/{poolId}': {
        delete: op('Delete a pool', { parameters: [idParam('poolId')] }),
      },
      '/v1/addresses': {
        post: op('Allocate an Elastic IP', { requestBody: body(req.AllocateAddressRequest) }),
        get: op('Describe Elastic IPs'),
      },
      '/v1/addresses/{allocationId}': {
        get: op('Describe one Elastic IP', { parameters: [idParam('allocationId')] }),
        delete: op('Release an Elastic IP', { parameters: [idParam('allocationId')] }),
      },
      '/v1/addresses/{allocationId}/associate': {
        post: op('Associate with an instance', {
          parameters: [idParam('allocationId')],
          requestBody: body(req.AssociateAddressRequest),
        }),
      },
      '/v1/addresses/{allocationId}/disassociate': {
        post: op('Disassociate', { parameters: [idParam('allocationId')] }),
      },
      '/v1/security-groups': {
        post: op('Create a security group', { requestBody: body(req.CreateSecurityGroupRequest) }),
        get: op('Describe security groups (?vpcId=)'),
      },
      '/v1/security-groups/{groupId}': {
        get: op('Describe one security group', { parameters: [idParam('groupId')] }),
        delete: op('Delete a security group', { parameters: [idParam('groupId')] }),
      },
      '/v1/security-groups/{groupId}/ingress': {
        post: op('Authorize inbound rules', {
          parameters: [idParam('groupId')],
          requestBody: body(req.SecurityGroupRulesRequest),
        }),
        delete: op('Revoke inbound rules', {
          parameters: [idParam('groupId')],
          requestBody: body(req.RevokeSecurityGroupRulesRequest),
        }),
      },
      '/v1/security-groups/{groupId}/egress': {
        post: op('Authorize outbound rules', {
          parameters: [idParam('groupId')],
          requestBody: body(req.SecurityGroupRulesRequest),
        }),
        delete: op('Revoke outbound rules', {
          parameters: [idParam('groupId')],
          requestBody: body(req.RevokeSecurityGroupRulesRequest),
        }),
      },
      '/v1/security-groups/{groupId}/ingress/revoke': {
        post: op('Revoke inbound rules', {
          parameters: [idParam('groupId')],
          requestBody: body(req.RevokeSecurityGroupRulesRequest),
        }),
      },
      '/v1/security-groups/{groupId}/egress/revoke': {
        post: op('Revoke outbound rules', {
          parameters: [idParam('groupId')],
          requestBody: body(req.RevokeSecurityGroupRulesRequest),
        }),
      },
      '/v1/security-groups/{groupId}/rules/{ruleId}': {
        delete: op('Revoke one rule by id', {
          parameters: [idParam('groupId'), idParam('ruleId')],
        }),
      },
      '/v1/instances/{instanceId}/security-groups': {
        put: op("Replace an instance's security groups", {
          parameters: [idParam('instanceId')],
          requestBody: body(req.ModifyInstanceSecurityGroupsRequest),
        }),
      },
      '/v1/volumes': {
        post: op('Create a volume', { requestBody: body(req.CreateVolumeRequest) }),
        get: op('Describe volumes'),
      },
      '/v1/volumes/{volumeId}': {
        get: op('Describe one volume', { parameters: [idParam('volumeId')] }),
        patch: op('Grow a volume', {
          parameters: [idParam('volumeId')],
          requestBody: body(req.ModifyVolumeRequest),
        }),
        delete: op('Delete a volume', { parameters: [idParam('volumeId')] }),
      },
      '/v1/volumes/{volumeId}/attach': {
        post: op('Attach to an instance', {
          parameters: [idParam('volumeId')],
          requestBody: body(req.AttachVolumeRequest),
        }),
      },
      '/v1/volumes/{volumeId}/detach': {
        post: op('Detach from its instance', {
          parameters: [idParam('volumeId')],
          requestBody: body(req.DetachVolumeRequest),
        }),
      },
      '/v1/snapshots': {
        post: op('Snapshot a volume', { requestBody: body(req.CreateSnapshotRequest) }),
        get: op('Describe snapshots'),
      },
      '/v1/snapshots/{snapshotId}': {
        get: op('Describe one snapshot', { parameters: [idParam('snapshotId')] }),
        delete: op('Delete a snapshot', { parameters: [idParam('snapshotId')] }),
      },
      '/healthz': { get: { summary: 'Liveness', responses: { '200': ok('OK') } } },
    },
  };
}
