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
        get: op('Serial console output (base64, as EC2)', { parameters: [idParam('instanceId')] }),
      },
      '/healthz': { get: { summary: 'Liveness', responses: { '200': ok('OK') } } },
    },
  };
}
