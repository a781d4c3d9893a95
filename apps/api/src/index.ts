export { createApiApp, type ApiDeps } from './app.js';
export type { ServiceContext } from './services/context.js';
