import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, describe, it } from 'node:test';
import { EXPORTER_ERROR_CODES, ExporterError } from '@trivy-airgap/exporter';
import {
  AirgapError,
  FILE_SYSTEM_ERROR_CODES,
  FORMAT_ERROR_CODES,
  FileSystemError,
  FormatError,
  TAR_READ_ERROR_CODES,
  TarReadError,
  type ErrorCategory,
  type ErrorCodeTable,
} from '@trivy-airgap/format';
import {
  IMPORTER_ERROR_CODES,
  ImporterError,
  PUBLISH_ERROR_CODES,
  PublishError,
} from '@trivy-airgap/importer';
import { OCI_ERROR_CODES, OciError } from '@trivy-airgap/oci';
import { TRIVY_ERROR_CODES, TrivyError } from '@trivy-airgap/trivy';
import { CLI_ERROR_CODES, CliError, exitCodeFor, run } from '../src/index.js';

const work = mkdtempSync(join(tmpdir(), 'airgap-exit-codes-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** Every package's code table with a way to make an error of each code. */
const TABLES: readonly [string, ErrorCodeTable, (code: string) => AirgapError][] = [
  ['format', FORMAT_ERROR_CODES, (code) => new FormatError(code as never, 'm')],
  [
    'file system',
    FILE_SYSTEM_ERROR_CODES,
    (code) =>
      new FileSystemError(code as never, 'm', { cause: undefined, hint: 'h', path: '/p', errno: 'E' }),
  ],
  ['tar reader', TAR_READ_ERROR_CODES, (code) => new TarReadError(code as never, 'm')],
  ['oci', OCI_ERROR_CODES, (code) => new OciError(code as never, 'm')],
  ['trivy', TRIVY_ERROR_CODES, (code) => new TrivyError(code as never, 'm')],
  ['exporter', EXPORTER_ERROR_CODES, (code) => new ExporterError(code as never, 'm')],
  ['importer', IMPORTER_ERROR_CODES, (code) => new ImporterError(code as never, 'm')],
  ['publish', PUBLISH_ERROR_CODES, (code) => new PublishError(code as never, 'm')],
  ['cli', CLI_ERROR_CODES, (code) => new CliError(code as never, 'm')],
];

/** README "Exit codes". */
const README_EXIT: Record<ErrorCategory, number> = {
  verification: 3,
  refused: 1,
  failure: 1,
  usage: 2,
  cancelled: 130,
};

describe('exit codes come from error categories', () => {
  it('every code of every package builds an error carrying its category and exits as the README says', () => {
    for (const [pkg, table, make] of TABLES) {
      for (const [code, category] of Object.entries(table)) {
        const error = make(code);
        assert.equal(error.code, code, `${pkg} ${code}`);
        assert.equal(error.category, category, `${pkg} ${code}`);
        assert.equal(exitCodeFor(error), README_EXIT[category], `${pkg} ${code} (${category})`);
      }
    }
  });

  it('trust failures exit 3; a refused downgrade exits 1; an error we did not mean to throw exits 1', () => {
    assert.equal(exitCodeFor(new FormatError('SIGNATURE_INVALID', 'm')), 3);
    assert.equal(exitCodeFor(new ImporterError('BUNDLE_DIGEST_MISMATCH', 'm')), 3);
    assert.equal(exitCodeFor(new ExporterError('MIRRORS_DISAGREE', 'm')), 3);
    assert.equal(new ImporterError('DOWNGRADE_REFUSED', 'm').category, 'refused');
    assert.equal(exitCodeFor(new ImporterError('DOWNGRADE_REFUSED', 'm')), 1);
    assert.equal(exitCodeFor(new ExporterError('INVALID_OPTION', 'm')), 2);
    assert.equal(exitCodeFor(new TypeError('x is undefined')), 1);
  });

  it('TrivyError context expected/found/path are the shared error fields', () => {
    const error = new TrivyError('ARTIFACT_LAYER_COUNT', 'm', {
      context: { kind: 'db', expected: 1, found: 2, path: '/x' },
    });
    assert.deepEqual([error.expected, error.found, error.path], [1, 2, '/x']);
  });
});

describe('run() reports an error by its category', () => {
  async function runInProcess(argv: string[]) {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    const chunks = { stdout: '', stderr: '' };
    stdout.on('data', (chunk: Buffer) => (chunks.stdout += chunk.toString()));
    stderr.on('data', (chunk: Buffer) => (chunks.stderr += chunk.toString()));
    const code = await run(argv, { stdout, stderr, env: {}, cwd: process.cwd() });
    return { code, ...chunks };
  }

  it('an unreadable --key file: exit 1, FS_NOT_FOUND naming the path, advice about --key', async () => {
    const missing = join(work, 'missing.key');
    const result = await runInProcess([
      'export',
      '--db',
      '--key',
      missing,
      '-o',
      join(work, 'b.tgz'),
      '--json',
    ]);
    assert.equal(result.code, 1, result.stderr);
    const { error } = JSON.parse(result.stdout) as { error: { code: string; path: string; hint: string } };
    assert.equal(error.code, 'FS_NOT_FOUND');
    assert.equal(error.path, missing);
    assert.match(error.hint, /--key/);
  });

  it('last line of defence: a raw file-system error no library mapped is reported as such, not as a bug', async () => {
    const file = join(work, 'a-file');
    writeFileSync(file, 'x');
    const result = await runInProcess(['keygen', '--out-dir', join(file, 'keys')]);
    assert.equal(result.code, 1);
    assert.match(
      result.stderr,
      /^error: cannot create the directory .*a-file\/keys: a part of the path is not a directory\n/,
    );
    assert.doesNotMatch(result.stderr, /this is a bug/);
    const json = await runInProcess(['keygen', '--out-dir', join(file, 'keys'), '--json']);
    assert.equal((JSON.parse(json.stdout) as { error: { code: string } }).error.code, 'FS_NOT_A_DIRECTORY');
  });

  it('an unknown flag: exit 2, JSON error with code USAGE and category usage', async () => {
    const result = await runInProcess(['status', '--no-such-flag', '--json']);
    assert.equal(result.code, 2, result.stderr);
    const { error } = JSON.parse(result.stdout) as { error: { code: string; category: string } };
    assert.equal(error.code, 'USAGE');
    assert.equal(error.category, 'usage');
  });
});
