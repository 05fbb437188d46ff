import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import * as utils from '@trivy-airgap/test-utils';
import { CLI, cliCommand, cliSync, shell, userEnv } from './process.js';

// Issue 12: output into a closed pipe (`inspect B | head -1`, `status | head`,
// `import … 2>&1 | head -2`) must not crash with an unhandled EPIPE, and never leave an import
// half-done or its lock held.

const work = mkdtempSync(join(tmpdir(), 'airgap-closed-pipes-'));
after(() => rmSync(work, { recursive: true, force: true }));
writeFileSync(join(work, 'signing.pub'), utils.defaultTestKey().publicKeyPem);
const bundle = utils.buildBundle({
  components: [{ kind: 'db' }, { kind: 'java-db' }, { kind: 'checks' }, { kind: 'vex' }],
});
writeFileSync(join(work, 'bundle.tgz'), bundle.bytes);
const env = userEnv(work);

/** The pipeline's own exit status and what the CLI wrote to stderr (into a file, not the pipe). */
function pipeline(args: string[], reader: string) {
  const run = shell(`${cliCommand(args)} 2>stderr.txt | ${reader} >/dev/null; echo "\${PIPESTATUS[0]}"`, {
    cwd: work,
    env,
  });
  return { code: Number(run.stdout.trim()), stderr: shell('cat stderr.txt', { cwd: work, env }).stdout };
}

describe('a reader that closes the pipe early', () => {
  it('`inspect B | head -1` (and `| true`, which leaves before the first line): no EPIPE crash, no stack, exit 0', () => {
    for (const reader of ['head -1', 'true']) {
      const run = pipeline(['inspect', 'bundle.tgz'], reader);
      assert.equal(run.code, 0, run.stderr);
      assert.equal(run.stderr, '');
    }
  });

  it('`status | head -1` and `--help | head -1`: the command ends normally', () => {
    const cache = join(work, 'status-cache');
    assert.equal(
      cliSync(['import', 'bundle.tgz', '--trust', 'signing.pub', '--cache-dir', cache], { cwd: work, env })
        .code,
      0,
    );
    const status = pipeline(['status', '--cache-dir', cache], 'head -1');
    assert.equal(status.code, 0, status.stderr);
    assert.equal(status.stderr, '');
    const help = pipeline(['--help'], 'head -1');
    assert.equal(help.code, 0, help.stderr);
    assert.equal(help.stderr, '');
  });

  it('`import … 2>&1 | head -2`: the import completes and releases its lock', () => {
    const cache = join(work, 'head-cache');
    const run = shell(
      `${cliCommand(['import', 'bundle.tgz', '--trust', 'signing.pub', '--cache-dir', cache])} 2>&1 | head -2 >/dev/null; echo "\${PIPESTATUS[0]}"`,
      { cwd: work, env },
    );
    assert.equal(run.stdout.trim(), '0', run.stderr);
    assertCompleteImport(cache);
  });

  it('stdout and stderr closed before the first byte: the import still completes, exit 0, no lock left', async () => {
    const cache = join(work, 'closed-cache');
    const child = spawn(
      process.execPath,
      [CLI, 'import', 'bundle.tgz', '--trust', 'signing.pub', '--cache-dir', cache],
      { cwd: work, env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    // Our read ends go away at once: every write of the child meets a closed pipe (EPIPE).
    child.stdout.destroy();
    child.stderr.destroy();
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
      child.on('exit', (exitCode, exitSignal) => resolve([exitCode, exitSignal])),
    );
    assert.equal(signal, null);
    assert.equal(code, 0);
    assertCompleteImport(cache);
  });
});

function assertCompleteImport(cache: string): void {
  assert.ok(!existsSync(join(cache, '.trivy-airgap', 'lock')), 'lock released');
  assert.deepEqual(readdirSync(join(cache, '.trivy-airgap', 'staging')).length, 0, 'no staging leftovers');
  const status = cliSync(['status', '--cache-dir', cache, '--json'], { cwd: work, env });
  assert.equal(status.code, 0, status.stdout);
  const report = JSON.parse(status.stdout) as {
    diagnosis: { components: { kind: string; verdict: string }[] };
  };
  assert.deepEqual(
    report.diagnosis.components.map((c) => `${c.kind} ${c.verdict}`),
    ['db ok', 'java-db ok', 'checks ok', 'vex ok'],
  );
}
