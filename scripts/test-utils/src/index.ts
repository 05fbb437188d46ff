export * from './archives.js';
export * from './trivy-fixtures.js';
export * from './bundle-fixtures.js';
