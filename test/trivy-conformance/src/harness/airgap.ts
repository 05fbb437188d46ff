import assert from 'node:assert/strict';
import { join } from 'node:path';
import {
  reportOf,
  runAirgap,
  runShell,
  runTrivy,
  type ProcessRun,
  type TrivyReport,
  type World,
} from './world.js';

/** The flags that point an export at the world's registry and VEX server. */
export function sourceFlags(world: World, checksRepository: string): string[] {
  return [
    '--db-repository',
    world.refs.db,
    '--java-db-repository',
    world.refs.javaDb,
    '--checks-bundle-repository',
    checksRepository,
    '--vex-repository',
    `probe=${world.vex.url}`,
    '--plain-http',
  ];
}

/**
 * `trivy-airgap export ARGS` into `<work>/<name>.tgz`, signed with `<keys>/signing.key` when `keys`
 * is given, else `--unsigned`. Returns the bundle path.
 */
export async function exportBundle(
  world: World,
  name: string,
  args: readonly string[],
  keys?: string,
): Promise<string> {
  const bundle = join(world.work, `${name}.tgz`);
  const signing = keys === undefined ? ['--unsigned'] : ['--key', join(keys, 'signing.key')];
  const run = await runAirgap(world, [
    'export',
    ...args,
    ...signing,
    '--work-dir',
    join(world.work, `export-${name}`),
    '-o',
    bundle,
  ]);
  assert.equal(run.code, 0, run.stderr);
  return bundle;
}

/** `trivy-airgap import BUNDLE --cache-dir CACHE ARGS`, trusting `<keys>/signing.pub` or unsigned. */
export async function importBundle(
  world: World,
  bundle: string,
  cache: string,
  args: readonly string[] = [],
  keys?: string,
): Promise<ProcessRun> {
  const trust = keys === undefined ? ['--allow-unsigned'] : ['--trust', join(keys, 'signing.pub')];
  return runAirgap(world, ['import', bundle, ...trust, '--cache-dir', cache, ...args]);
}

/** The flags of the `trivy image FLAGS IMAGE` line `import` prints, exactly as printed (shell-quoted). */
export function printedFlags(importOutput: string): string {
  const line = importOutput.split('\n').find((text) => text.trim().startsWith('trivy image '));
  const flags = line === undefined ? undefined : /^\s*trivy image (.*) IMAGE$/.exec(line)?.[1];
  assert.ok(flags !== undefined, importOutput);
  return flags;
}

/** Runs the printed flags through a shell, as a user pastes them, with `trivy rootfs` on the probe rootfs. */
export function runPrinted(world: World, version: string, printed: string): Promise<ProcessRun> {
  return runShell(world, `exec "$TRIVY" rootfs ${printed} --scanners vuln --format json "$ROOTFS"`, {
    TRIVY: world.tools.trivy[version],
    ROOTFS: world.rootfs,
  });
}

/** `trivy rootfs FLAGS` on the probe rootfs with a cache, JSON out, no phone-home. */
export function rootfsArgs(world: World, cache: string, flags: readonly string[]): string[] {
  return [
    'rootfs',
    ...flags,
    '--cache-dir',
    cache,
    '--skip-version-check',
    '--disable-telemetry',
    '--scanners',
    'vuln',
    '--format',
    'json',
    world.rootfs,
  ];
}

/** `trivy rootfs` offline on the probe rootfs with our cache: the flags trivy-facts.md names. */
export function offlineRootfsArgs(world: World, cache: string, extra: readonly string[] = []): string[] {
  return rootfsArgs(world, cache, ['--skip-db-update', '--skip-java-db-update', '--offline-scan', ...extra]);
}

/** `trivy config --config YAML` on the Dockerfile project: the report. */
export async function configWithYaml(
  world: World,
  version: string,
  yaml: string,
  env: NodeJS.ProcessEnv = {},
): Promise<TrivyReport> {
  return reportOf(
    await runTrivy(world, version, ['config', '--config', yaml, '--format', 'json', world.project], env),
  );
}
