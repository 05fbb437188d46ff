#!/usr/bin/env node
// Runs every compiled test file with Node's own test runner and prints its summary.
// Usage: node scripts/run-tests.mjs [substring…]   (only files whose path contains one of them)
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;

function findTests(dir) {
  if (!existsSync(dir)) return [];
  const found = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) found.push(...findTests(path));
    else if (entry.name.endsWith('.test.js')) found.push(path);
  }
  return found;
}

const roots = [
  ...readdirSync(join(root, 'packages')).map((name) => join(root, 'packages', name, 'dist', 'test')),
  join(root, 'scripts', 'test-utils', 'dist', 'test'),
  join(root, 'test', 'dist', 'src'),
  join(root, 'test', 'trivy-conformance', 'dist', 'src'),
];
const filters = process.argv.slice(2);
const files = roots
  .flatMap(findTests)
  .filter((file) => filters.length === 0 || filters.some((filter) => file.includes(filter)))
  .sort();
if (files.length === 0) {
  console.error('no compiled test files found: run `pnpm build` first');
  process.exit(1);
}
console.error(`running ${files.length} test files`);
// A TAP copy of the results, read afterwards for the plain one-line summary.
const tapDir = mkdtempSync(join(tmpdir(), 'airgap-tap-'));
const tapFile = join(tapDir, 'results.tap');
const result = spawnSync(
  process.execPath,
  [
    '--enable-source-maps',
    '--test',
    '--test-concurrency=2',
    '--test-reporter=spec',
    '--test-reporter-destination=stdout',
    '--test-reporter=tap',
    `--test-reporter-destination=${tapFile}`,
    ...files.map((file) => relative(root, file)),
  ],
  { cwd: root, stdio: 'inherit', env: { ...process.env, TRIVY_AIRGAP_TEST: '1' } },
);
const tap = existsSync(tapFile) ? readFileSync(tapFile, 'utf8') : '';
rmSync(tapDir, { recursive: true, force: true });
const count = (name) => Number(new RegExp(`^# ${name} (\\d+)$`, 'm').exec(tap)?.[1] ?? 0);
const failed = count('fail') + count('cancelled');
console.log(
  `\ntests: ${count('pass')} passed, ${failed} failed, ${count('skipped') + count('todo')} skipped`,
);
process.exit(result.status ?? 1);
