import express from 'express';
import { buildOpenApiDocument } from '@minicloud/contracts';
import { errors } from '@minicloud/domain';
import { healthHandler, type HealthCheck } from './health.js';
import { bearerAuth, errorMiddleware, jsonBodiesOnly, requireQueueForChanges } from './http.js';
import { addressesRouter } from './routes/addresses.js';
import { imagesRouter } from './routes/images.js';
import { instanceTypesRouter } from './routes/instance-types.js';
import { instancesRouter } from './routes/instances.js';
import { keyPairsRouter } from './routes/key-pairs.js';
import { networksRouter } from './routes/networks.js';
import { securityGroupsRouter } from './routes/security-groups.js';
import { volumesRouter } from './routes/volumes.js';
import type { ServiceContext } from './services/context.js';
import { createServices } from './services/index.js';

export interface ApiDeps extends ServiceContext {
  adminKey: string;
  log: (msg: string, err?: unknown) => void;
  /** Checks /healthz runs besides the database and Redis (the server adds libvirt). */
  healthChecks?: Record<string, HealthCheck>;
}

/** Changes kept only in the database: they need no job, so they work with Redis down. */
const DATABASE_ONLY = /^\/(key-pairs|instance-types)(\/|$)/;

/**
 * The API: health, bearer auth, JSON, one router per resource under /v1 (each validates and
 * hands over to its service), the OpenAPI document, and the one error middleware.
 */
export function createApiApp(deps: ApiDeps) {
  const s = createServices(deps);
  const openapi = buildOpenApiDocument();

  const app = express();
  app.disable('x-powered-by');
  app.set('query parser', 'simple');
  app.get('/healthz', healthHandler({ ...deps, extraChecks: deps.healthChecks }));
  app.use('/v1', bearerAuth(deps.adminKey));
  app.use('/v1', requireQueueForChanges(deps.queue, DATABASE_ONLY));
  app.use(express.json({ limit: '64kb', strict: true }));
  app.use(jsonBodiesOnly);

  const v1 = express.Router();
  v1.get('/openapi.json', (_req, res) => {
    res.json(openapi);
  });
  v1.use(
    imagesRouter(s.images),
    instanceTypesRouter(s.types),
    keyPairsRouter(s.keyPairs),
    instancesRouter(s.instances),
    networksRouter(s.networks),
    addressesRouter(s.addresses),
    securityGroupsRouter(s.groups),
    volumesRouter(s.volumes),
  );
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
