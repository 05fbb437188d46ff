import { hostname } from 'node:os';
import { cacheStatus, parseDuration } from '@trivy-airgap/importer';
import type { Argv } from 'yargs';
import type { CommandContext } from '../context.js';
import { setExamples } from '../help.js';
import { ReportedFailure, UsageError } from '../errors.js';
import { formatDuration } from '../progress.js';
import { checkTrivyVersion, offlineCommand, TRIVY_VERSION_OPTION } from '../trivy-command.js';
import { resolveCache, resolveVexConfig } from '../locations.js';

interface StatusArgs {
  'cache-dir': string | undefined;
  'vex-config': string | undefined;
  'max-age': string | undefined;
  'trivy-version': string | undefined;
}

export function statusCommand(context: CommandContext) {
  return {
    command: 'status',
    describe: 'What is installed, how old, and whether Trivy will run offline with it',
    builder: (yargs: Argv) => {
      setExamples('status', [
        ['$0 status', "Trivy's default cache"],
        ['$0 status --cache-dir /srv/trivy --max-age 7d --json', 'for a monitoring check'],
      ]);
      return yargs
        .option('cache-dir', { type: 'string', describe: "Trivy's cache dir (default as Trivy resolves it)" })
        .option('vex-config', { type: 'string', describe: "Trivy's VEX repository.yaml" })
        .option('max-age', {
          type: 'string',
          describe: 'exit 1 when any content was built longer ago than this (36h, 7d, …): for monitoring',
        })
        .option('trivy-version', TRIVY_VERSION_OPTION);
    },
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
        const changed = status.changedSinceImport.find(
          (entry) => entry.kind === component.kind && entry.name === component.name,
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
              : changed !== undefined
                ? `${changed.change} by Trivy since the import (not what bundle ${installed.current.bundleId ?? 'pre-existing'} installed)`
                : `from bundle ${installed.current.bundleId ?? 'pre-existing'}`,
          ].filter((fact) => fact !== undefined);
          if (facts.length > 0) lines.push(`${''.padEnd(16)} ${facts.join(', ')}`);
        }
      }
      for (const changed of status.changedSinceImport.filter((entry) => entry.change === 'removed')) {
        lines.push(
          `${changed.key}: removed since the import (trivy clean?); the next import installs it again`,
        );
      }
      if (status.interrupted)
        lines.push('an import was interrupted; the next import or rollback finishes it');
      const lock = status.lockedBy;
      if (lock !== undefined) {
        const holder = `pid ${lock.pid}${lock.host === hostname() ? '' : ` on ${lock.host}`} (${lock.command}${lock.startedAt === '' ? '' : ` since ${lock.startedAt}`})`;
        lines.push(
          lock.alive
            ? `locked by ${holder}`
            : `stale lock of ${holder}: that process is gone; the next import or rollback takes the lock over and cleans up`,
        );
      }
      for (const stale of status.stale) {
        lines.push(
          `TOO OLD: ${stale.kind}${stale.name === undefined ? '' : ` ${stale.name}`} built ${stale.updatedAt}, ${formatDuration(stale.ageMs)} ago`,
        );
      }
      const command = offlineCommand(status, cache.defaultPath, args['trivy-version']);
      if (command.works) {
        lines.push(
          `verdict: Trivy will run offline${status.diagnosis.verdict === 'warning' ? ' (with warnings)' : ''}`,
          `run Trivy offline with: ${command.line}`,
        );
      } else {
        lines.push('verdict: Trivy CANNOT scan offline with this cache (FAIL above)');
      }
      context.out.result({ ...status, trivyFlags: command.flags }, lines);
      if (!status.healthy) {
        throw new ReportedFailure(
          command.works ? 'content is older than --max-age' : 'Trivy cannot scan offline with this cache',
        );
      }
    },
  };
}
