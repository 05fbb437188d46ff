#!/usr/bin/env node
// Runs every compiled test file with Node's own test runner and prints its summary.
// Usage: node scripts/run-tests.mjs [substring…]   (only files whose path contains one of them)
//
// Coverage of packages/*/src (every process the tests start counts: test files, and the CLI they
// spawn) is printed before the last line; TRIVY_AIRGAP_COVERAGE=0 leaves it out. V8 records it
// (NODE_V8_COVERAGE) and c8 reads it back through the source maps onto the .ts files.
// TRIVY_AIRGAP_TIMINGS=1 also prints the ten slowest test files, TRIVY_AIRGAP_TIMINGS=all every file.
// The last line is always `tests: N passed, N failed, N skipped` (CI reads it).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const withCoverage = process.env.TRIVY_AIRGAP_COVERAGE !== '0';
const timings = process.env.TRIVY_AIRGAP_TIMINGS ?? '0';

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
// A TAP copy of the results, read afterwards for the plain one-line summary; per-file durations.
const tapDir = mkdtempSync(join(tmpdir(), 'airgap-tap-'));
const tapFile = join(tapDir, 'results.tap');
const durationsFile = join(tapDir, 'durations.jsonl');
const coverageDir = join(tapDir, 'v8-coverage');
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
    `--test-reporter=${join(root, 'scripts', 'test-file-durations.mjs')}`,
    `--test-reporter-destination=${durationsFile}`,
    ...files.map((file) => relative(root, file)),
  ],
  {
    cwd: root,
    stdio: 'inherit',
    env: {
      ...process.env,
      TRIVY_AIRGAP_TEST: '1',
      ...(withCoverage ? { NODE_V8_COVERAGE: coverageDir } : {}),
    },
  },
);
const tap = existsSync(tapFile) ? readFileSync(tapFile, 'utf8') : '';
if (timings === '1' || timings === 'all') printFileDurations(timings === 'all' ? Infinity : 10);
if (withCoverage) printCoverage();
rmSync(tapDir, { recursive: true, force: true });
const count = (name) => Number(new RegExp(`^# ${name} (\\d+)$`, 'm').exec(tap)?.[1] ?? 0);
const failed = count('fail') + count('cancelled');
console.log(
  `\ntests: ${count('pass')} passed, ${failed} failed, ${count('skipped') + count('todo')} skipped`,
);
process.exit(result.status ?? 1);

function printFileDurations(limit) {
  if (!existsSync(durationsFile)) return;
  const rows = readFileSync(durationsFile, 'utf8')
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line))
    .sort((a, b) => b.ms - a.ms);
  const sum = rows.reduce((total, { ms }) => total + ms, 0);
  console.log(
    `\n${limit < rows.length ? 'slowest test files' : 'test files'} (seconds, their top-level tests summed; all ${rows.length} files: ${(sum / 1000).toFixed(1)} s):`,
  );
  for (const { file, ms } of rows.slice(0, limit)) {
    console.log(`${(ms / 1000).toFixed(1).padStart(7)}  ${relative(root, file)}`);
  }
}

/** One line of totals and one of line coverage per package, from c8's json-summary of packages/<name>/src. */
function printCoverage() {
  const started = Date.now();
  if (!existsSync(coverageDir)) return;
  const reportDir = join(tapDir, 'coverage');
  const c8 = createRequire(import.meta.url).resolve('c8/bin/c8.js');
  const report = spawnSync(
    process.execPath,
    [
      c8,
      'report',
      `--temp-directory=${coverageDir}`,
      `--reports-dir=${reportDir}`,
      '--reporter=json-summary',
      // Every source file counts, also those no test loaded (at 0 %).
      '--all',
      '--include=packages/*/dist/src/**/*.js',
    ],
    { cwd: root, encoding: 'utf8' },
  );
  const summaryFile = join(reportDir, 'coverage-summary.json');
  if (report.status !== 0 || !existsSync(summaryFile)) {
    console.log(
      `\ncoverage: not measured (c8 report: ${report.stderr.trim().split('\n')[0] || `exit ${report.status}`})`,
    );
    return;
  }
  const summary = JSON.parse(readFileSync(summaryFile, 'utf8'));
  const pct = (metric) => (metric.total === 0 ? 100 : (100 * metric.covered) / metric.total).toFixed(1);
  const { total } = summary;
  const packages = new Map();
  for (const [path, metrics] of Object.entries(summary)) {
    const match = new RegExp(`packages\\${sep}([^${sep}]+)\\${sep}`).exec(relative(root, path));
    if (path === 'total' || match === null) continue;
    const lines = packages.get(match[1]) ?? { total: 0, covered: 0 };
    lines.total += metrics.lines.total;
    lines.covered += metrics.lines.covered;
    packages.set(match[1], lines);
  }
  console.log(
    `\ncoverage of packages/*/src: lines ${pct(total.lines)} %, branches ${pct(total.branches)} %, functions ${pct(total.functions)} %`,
  );
  const perPackage = [...packages]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, lines]) => `${name} ${pct(lines)} %`);
  console.log(`lines per package: ${perPackage.join(', ')}`);
  if (timings !== '0') {
    console.log(
      `coverage report: ${((Date.now() - started) / 1000).toFixed(1)} s over ${readdirSync(coverageDir).length} processes`,
    );
  }
}
