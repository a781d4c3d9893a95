export * from './requests.js';
export * from './openapi.js';
