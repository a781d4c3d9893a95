export { createApiApp, type ApiDeps } from './app.js';
export { ensureAdminKey } from './admin-key.js';
