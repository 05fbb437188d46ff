export * from './archives.js';
export * from './trivy-fixtures.js';
