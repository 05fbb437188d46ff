import { cacheStatus, parseDuration } from '@trivy-airgap/importer';
import { offlineTrivyFlags, parseTrivyVersion, shellQuote, TrivyError } from '@trivy-airgap/trivy';
import type { Argv } from 'yargs';
import type { CommandContext } from '../context.js';
import { EXIT_FAILURE, ReportedFailure, UsageError } from '../exit-codes.js';
import { formatDuration } from '../progress.js';
import { resolveCache, resolveVexConfig } from './verify.js';

interface StatusArgs {
  'cache-dir': string | undefined;
  'vex-config': string | undefined;
  'max-age': string | undefined;
  'trivy-version': string | undefined;
}

/** `--trivy-version` of import and status: a usage error before anything is done. */
export function checkTrivyVersion(value: string | undefined): void {
  if (value === undefined) return;
  try {
    parseTrivyVersion(value);
  } catch (error) {
    if (error instanceof TrivyError) throw new UsageError(error.message, error.hint);
    throw error;
  }
}

export function statusCommand(context: CommandContext) {
  return {
    command: 'status',
    describe: 'What is installed, how old, and whether Trivy will run offline with it',
    builder: (yargs: Argv) =>
      yargs
        .option('cache-dir', { type: 'string', describe: "Trivy's cache dir (default as Trivy resolves it)" })
        .option('vex-config', { type: 'string', describe: "Trivy's VEX repository.yaml" })
        .option('max-age', {
          type: 'string',
          describe: 'exit 1 when any content was built longer ago than this (36h, 7d, …): for monitoring',
        })
        .option('trivy-version', {
          type: 'string',
          describe:
            "the Trivy release to print the offline flags for (default: the last imported bundle's target)",
        })
        .example('$0 status', "Trivy's default cache")
        .example('$0 status --cache-dir /srv/trivy --max-age 7d --json', 'for a monitoring check'),
    handler: async (args: StatusArgs) => {
      checkTrivyVersion(args['trivy-version']);
      let maxAgeMs: number | undefined;
      if (args['max-age'] !== undefined) {
        maxAgeMs = parseDuration(args['max-age']);
        if (maxAgeMs === undefined) {
          throw new UsageError(
            `--max-age ${JSON.stringify(args['max-age'])} is not a duration`,
            'write it like 36h, 7d or 1d12h',
          );
        }
      }
      const cache = resolveCache(context, args['cache-dir']);
      const status = await cacheStatus({
        cacheDir: cache.path,
        vexConfigPath: resolveVexConfig(context, args['vex-config']),
        ...(maxAgeMs === undefined ? {} : { maxAgeMs }),
      });
      const lines = [`cache ${status.cacheDir} (${cache.source})`];
      for (const component of status.diagnosis.components) {
        const key = component.name === undefined ? component.kind : `${component.kind} ${component.name}`;
        const installed = Object.values(status.state.components).find(
          (entry) => entry.kind === component.kind && (entry.name ?? undefined) === component.name,
        );
        lines.push(`${key.padEnd(16)} ${component.verdict.toUpperCase().padEnd(7)} ${component.summary}`);
        if (component.present) {
          const facts = [
            component.version === undefined ? undefined : `version ${component.version}`,
            component.updatedAt === undefined
              ? undefined
              : `built ${component.updatedAt} (${formatDuration(component.ageMs ?? 0)} old)`,
            component.downloadedAt === undefined ? undefined : `downloaded ${component.downloadedAt}`,
            installed === undefined
              ? undefined
              : `from bundle ${installed.current.bundleId ?? 'pre-existing'}`,
          ].filter((fact) => fact !== undefined);
          if (facts.length > 0) lines.push(`${''.padEnd(16)} ${facts.join(', ')}`);
        }
      }
      if (status.interrupted)
        lines.push('an import was interrupted; the next import or rollback finishes it');
      if (status.lockedBy !== undefined)
        lines.push(`locked by pid ${status.lockedBy.pid} (${status.lockedBy.command})`);
      for (const stale of status.stale) {
        lines.push(
          `TOO OLD: ${stale.kind}${stale.name === undefined ? '' : ` ${stale.name}`} built ${stale.updatedAt}, ${formatDuration(stale.ageMs)} ago`,
        );
      }
      lines.push(
        status.diagnosis.verdict === 'fail'
          ? 'verdict: Trivy will FAIL offline with this cache (see above)'
          : `verdict: Trivy will run offline${status.diagnosis.verdict === 'warning' ? ' (with warnings)' : ''}`,
      );
      const trivyFlags = offlineTrivyFlags({
        cacheDir: status.cacheDir,
        defaultCacheDir: cache.defaultPath,
        trivyVersion: args['trivy-version'] ?? status.state.trivyVersions,
        components: status.diagnosis.components
          .filter((component) => component.present)
          .map((component) => component.kind),
      });
      lines.push(`run Trivy offline with: trivy image ${shellQuote(trivyFlags)} IMAGE`);
      context.out.result({ ...status, trivyFlags }, lines);
      if (!status.healthy) {
        throw new ReportedFailure(
          EXIT_FAILURE,
          status.stale.length > 0
            ? 'content is older than --max-age'
            : 'Trivy would fail offline with this cache',
        );
      }
    },
  };
}
