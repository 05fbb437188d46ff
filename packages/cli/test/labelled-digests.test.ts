import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as utils from '@trivy-airgap/test-utils';
import { runCli } from './in-process.js';
import { userEnv } from './process.js';

// Issue 12 (through run() in process: what is printed is the point, not the process): export showed the layer digest, verify and import the manifest digest, both
// unlabelled, so they looked like a mismatch. Every digest a human reads is labelled by what it is.
// And what export says about a split bundle that fits in one part: "1 part", not "1 parts".

const work = mkdtempSync(join(tmpdir(), 'airgap-labelled-digests-'));
const key = utils.defaultTestKey();
writeFileSync(join(work, 'signing.key'), key.privateKeyPem);
writeFileSync(join(work, 'signing.pub'), key.publicKeyPem);
const env = userEnv(work);
let registry: utils.TestRegistry;
before(async () => {
  registry = await utils.startRegistry({ mode: 'plain' });
  await utils.seedRegistryWithSkopeo(registry, { 'aquasec/trivy-db:2': utils.trivyArtifact('db') });
});
after(async () => {
  await registry.stop();
  rmSync(work, { recursive: true, force: true });
});

interface ExportJson {
  components: { kind: string; digest: string; layerDigest: string }[];
}

/** Where the first 12 hex digits of `digest` appear in `text`, each with the word before it. */
function labelsOf(text: string, digest: string): string[] {
  const short = digest.slice(0, 'sha256:'.length + 12);
  return [...text.matchAll(new RegExp(`(\\S+)\\s+${short}`, 'g'))].map((match) => match[1] ?? '');
}

describe('digests are labelled (manifest sha256:…, layer sha256:…) wherever a human reads them', () => {
  it('export, verify, inspect and import name the same manifest digest as such, and the layer digest as such', async () => {
    const exportArgs = (output: string) => [
      'export',
      '--db',
      '--plain-http',
      '--db-repository',
      `${registry.host}/aquasec/trivy-db:2`,
      '--key',
      'signing.key',
      '-o',
      output,
    ];
    const json = await runCli([...exportArgs('json.tgz'), '--json'], { cwd: work, env });
    assert.equal(json.code, 0, json.stderr);
    const db = (JSON.parse(json.stdout) as ExportJson).components[0];
    assert.ok(db !== undefined && db.digest !== db.layerDigest);

    const exported = await runCli(exportArgs('bundle.tgz'), { cwd: work, env });
    assert.equal(exported.code, 0, exported.stderr);
    const verified = await runCli(['verify', 'bundle.tgz', '--trust', 'signing.pub'], { cwd: work, env });
    assert.equal(verified.code, 0, verified.stderr);
    const inspected = await runCli(['inspect', 'bundle.tgz'], { cwd: work, env });
    assert.equal(inspected.code, 0, inspected.stderr);
    const imported = await runCli(
      ['import', 'bundle.tgz', '--trust', 'signing.pub', '--cache-dir', join(work, 'cache')],
      { cwd: work, env },
    );
    assert.equal(imported.code, 0, imported.stderr);

    for (const [command, output] of [
      ['export', exported.stdout],
      ['verify', verified.stdout],
      ['inspect', inspected.stdout],
      ['import', imported.stdout + imported.stderr],
    ] as const) {
      const manifest = labelsOf(output, db.digest);
      assert.ok(manifest.length > 0, `${command} shows the manifest digest:\n${output}`);
      assert.ok(
        manifest.every((label) => label === 'manifest'),
        `${command} labels it "manifest": ${manifest.join(', ')}\n${output}`,
      );
      const layer = labelsOf(output, db.layerDigest);
      assert.ok(
        layer.every((label) => label === 'layer'),
        `${command} labels it "layer": ${layer.join(', ')}\n${output}`,
      );
    }
    assert.deepEqual(labelsOf(exported.stdout, db.layerDigest), ['layer']);
  });
});

describe('export --split of a bundle that fits in one part', () => {
  it('says "1 part" (summary and progress), never "1 parts"', async () => {
    const run = await runCli(
      [
        'export',
        '--db',
        '--plain-http',
        '--db-repository',
        `${registry.host}/aquasec/trivy-db:2`,
        '--unsigned',
        '--split',
        '4G',
        '-o',
        'one-part.tgz',
      ],
      { cwd: work, env },
    );
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /\b1 part of /);
    assert.match(run.stderr, /, 1 part\b/);
    assert.doesNotMatch(run.stdout + run.stderr, /\b1 parts\b/);
  });
});
