import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { buildBundle, defaultTestKey } from '@trivy-airgap/test-utils';
import { verifyBundle } from '../src/index.js';

const work = mkdtempSync(join(tmpdir(), 'airgap-verify-'));
after(() => rmSync(work, { recursive: true, force: true }));
const pub = join(work, 'signing.pub');
writeFileSync(pub, defaultTestKey().publicKeyPem);

describe('verifyBundle', () => {
  it('accepts a complete signed bundle and lists every check', async () => {
    const bundle = buildBundle({
      components: [{ kind: 'db' }, { kind: 'java-db' }, { kind: 'checks' }, { kind: 'vex' }],
    });
    const file = join(work, 'ok.tgz');
    writeFileSync(file, bundle.bytes);
    const result = await verifyBundle({ bundle: file, trustFiles: [pub] });
    assert.equal(result.bundleId, bundle.bundleId);
    assert.ok(result.checks.every((c) => c.ok));
    console.log(result.checks.map((c) => `${c.check} ${c.subject} ${c.detail}`).join('\n'));
  });
});
