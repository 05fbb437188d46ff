export * from './archives.js';
export * from './trivy-fixtures.js';
export * from './bundle-fixtures.js';
export * from './test-ca.js';
export * from './token-server.js';
export * from './registry.js';
export * from './http-servers.js';
export * from './proxy.js';
