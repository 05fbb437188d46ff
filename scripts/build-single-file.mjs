#!/usr/bin/env node
// Builds the single-file CLI: one self-contained ESM file (all dependencies bundled) that runs with
// plain `node` >= 20 and no node_modules, so the importer can be carried into the air gap with the bundle.
// Output: packages/cli/dist/trivy-airgap.mjs (run after `tsc -b`). Importable: buildSingleFile()
// also builds variants (test/src/fifth-kind.test.ts bundles the CLI with an extra table row).
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { build } from 'esbuild';

const root = new URL('..', import.meta.url).pathname;

/** Bundles packages/cli/dist/src/main.js (and the workspace packages it imports) into `outfile`. */
export async function buildSingleFile({
  outfile = `${root}packages/cli/dist/trivy-airgap.mjs`,
  plugins = [],
} = {}) {
  const { version } = JSON.parse(readFileSync(`${root}packages/cli/package.json`, 'utf8'));
  await build({
    entryPoints: [`${root}packages/cli/dist/src/main.js`],
    outfile,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    minify: false,
    legalComments: 'inline',
    logLevel: 'warning',
    plugins,
    // unzipper's S3 reader (Open.s3_v3) requires the AWS SDK lazily; trivy-airgap never calls it.
    external: ['@aws-sdk/client-s3'],
    define: { __TRIVY_AIRGAP_VERSION__: JSON.stringify(version) },
    // CommonJS dependencies inside an ESM bundle still call require(): give them one.
    banner: {
      js: [
        "import { createRequire as __airgapCreateRequire } from 'node:module';",
        'const require = __airgapCreateRequire(import.meta.url);',
      ].join('\n'),
    },
  });
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await buildSingleFile();
}
