import { resolve } from 'node:path';
import { describeBlobs, publishBundle, type PublishBundleResult } from '@trivy-airgap/importer';
import type { OciEvent } from '@trivy-airgap/oci';
import { shellQuote } from '@trivy-airgap/trivy';
import type { Argv } from 'yargs';
import { cancellable } from '../cancel.js';
import type { CommandContext } from '../context.js';
import { UsageError } from '../errors.js';
import { ProgressRenderer } from '../progress.js';
import {
  registryAccessOptions,
  registryClientOptions,
  type RegistryAccessArgs,
} from '../registry-options.js';
import { verifiedSourceOptions, type BundleArgs } from '../bundle-source.js';

/** `import` flags of the scale-out paths: push to the site registry, lay out VEX for a web server. */
export interface PublishArgs extends RegistryAccessArgs {
  'to-registry': string | undefined;
  'vex-serve-dir': string | undefined;
  'vex-base-url': string | undefined;
  /** false with --no-cache: only publish, leave the local Trivy cache alone. */
  cache: boolean;
  /** Shared with the cache import: also lets registry tags move to older content. */
  'allow-downgrade': boolean;
}

const PUBLISH_GROUP = 'Publish inside the air gap (instead of, or besides, the local cache):';

export function publishOptions<T>(yargs: Argv<T>) {
  return registryAccessOptions(
    yargs
      .option('to-registry', {
        type: 'string',
        group: PUBLISH_GROUP,
        describe:
          'push the DB, Java DB and checks to HOST[:PORT][/PREFIX] as trivy-db:2, trivy-java-db:1, trivy-checks:<tag> (digests unchanged)',
      })
      .option('vex-serve-dir', {
        type: 'string',
        group: PUBLISH_GROUP,
        describe: 'lay out the VEX repositories in DIR for a static web server (DIR/<name>/.well-known/…)',
      })
      .option('vex-base-url', {
        type: 'string',
        group: PUBLISH_GROUP,
        describe: 'the URL the web server serves --vex-serve-dir at',
      })
      .option('cache', {
        type: 'boolean',
        default: true,
        group: PUBLISH_GROUP,
        describe: 'install into the local Trivy cache (--no-cache: only publish)',
      }),
  );
}

/** Checks the flag combinations; true when something is to be published. */
export function checkPublishArgs(
  args: PublishArgs & BundleArgs & { 'write-trivy-config'?: string },
): boolean {
  if ((args['vex-serve-dir'] === undefined) !== (args['vex-base-url'] === undefined)) {
    throw new UsageError(
      '--vex-serve-dir and --vex-base-url go together',
      'give the directory and the URL a web server serves it at',
    );
  }
  const publishing = args['to-registry'] !== undefined || args['vex-serve-dir'] !== undefined;
  if (!args.cache && !publishing) {
    throw new UsageError('--no-cache leaves nothing to do', 'add --to-registry and/or --vex-serve-dir');
  }
  if (!args.cache && args['write-trivy-config'] !== undefined) {
    throw new UsageError('--write-trivy-config describes the local cache, which --no-cache skips');
  }
  // yargs hands a lone `-` over as an empty string (see bundlePath).
  if (args.cache && publishing && (args.bundle === '-' || args.bundle === '')) {
    throw new UsageError(
      'standard input can be read once: with - either install (no publish flags) or publish (--no-cache)',
      'or give the bundle as a file',
    );
  }
  return publishing;
}

export interface PublishOutput {
  readonly json: Record<string, unknown>;
  readonly lines: readonly string[];
}

/** Runs the publish part of `import` and renders its result. */
export async function runPublish(
  context: CommandContext,
  args: PublishArgs & BundleArgs,
): Promise<{ result: PublishBundleResult; output: PublishOutput }> {
  const progress = new ProgressRenderer(context.out);
  let result: PublishBundleResult;
  const target = args['to-registry'];
  const toRegistry =
    target === undefined
      ? undefined
      : {
          target,
          client: {
            ...(await registryClientOptions(context, args)),
            onEvent: (event: OciEvent) => {
              if (event.type === 'retry') {
                progress.listener({
                  type: 'warning',
                  message: `${event.url}: ${event.reason}, retry ${event.attempt} in ${event.delayMs} ms`,
                });
              }
            },
          },
        };
  try {
    result = await cancellable(
      context,
      'publish',
      'what was pushed or laid out so far stays; run it again to finish',
      (signal) =>
        publishBundle({
          ...verifiedSourceOptions(context, args),
          ...(signal === undefined ? {} : { signal }),
          allowDowngrade: args['allow-downgrade'],
          ...(toRegistry === undefined ? {} : { toRegistry }),
          ...(args['vex-serve-dir'] === undefined || args['vex-base-url'] === undefined
            ? {}
            : {
                vexServe: {
                  dir: resolve(context.io.cwd, args['vex-serve-dir']),
                  baseUrl: args['vex-base-url'],
                },
              }),
          onProgress: progress.listener,
        }),
    );
  } finally {
    progress.stop();
  }
  return { result, output: renderPublish(result) };
}

export function renderPublish(result: PublishBundleResult): PublishOutput {
  const json: Record<string, unknown> = {};
  const lines: string[] = [];
  const { registry, vex } = result;
  if (registry !== undefined) {
    json.registry = {
      target: registry.target,
      artifacts: registry.artifacts,
      trivyFlags: registry.trivy.flags,
      trivyYaml: registry.trivy.trivyYaml,
      repositories: registry.trivy.repositories,
      notes: registry.trivy.notes,
    };
    lines.push('', `pushed to ${registry.target}:`);
    for (const artifact of registry.artifacts) {
      lines.push(
        `  ${artifact.kind.padEnd(8)} ${artifact.reference}@${artifact.digest.slice(0, 19)}…  blobs ${describeBlobs(artifact.blobs)}${artifact.tagMoved ? '' : ', tag unchanged'}`,
      );
    }
    lines.push(
      '',
      'Point Trivy clients at the registry (they download as from upstream: no skip flags):',
      `  trivy image ${shellQuote(registry.trivy.flags)} IMAGE`,
      'or in trivy.yaml:',
      ...registry.trivy.trivyYaml
        .trimEnd()
        .split('\n')
        .filter((line) => !line.startsWith('#'))
        .map((line) => `  ${line}`),
      ...registry.trivy.notes.map((note) => `note: ${note}`),
    );
  }
  if (vex !== undefined) {
    json.vexServe = {
      dir: vex.dir,
      generation: vex.generation,
      baseUrl: vex.baseUrl,
      repositories: vex.repositories,
      repositoryYaml: vex.repositoryYaml,
    };
    lines.push('', `VEX repositories laid out in ${vex.dir} (serve it at ${vex.baseUrl}):`);
    for (const repository of vex.repositories) {
      lines.push(`  ${repository.name.padEnd(12)} ${repository.manifestUrl}`);
    }
    lines.push(
      '',
      "Clients need in Trivy's repository.yaml (~/.trivy/vex/repository.yaml; also in DIR/repository.yaml):",
      ...vex.repositoryYaml
        .trimEnd()
        .split('\n')
        .filter((line) => !line.startsWith('#'))
        .map((line) => `  ${line}`),
      'and scan with: trivy image --vex repo IMAGE',
    );
  }
  return { json, lines };
}
