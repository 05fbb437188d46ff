import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { cacheStatus, importBundle } from '@trivy-airgap/importer';
import { shellQuote } from '@trivy-airgap/trivy';
import type { Argv } from 'yargs';
import type { CommandContext } from '../context.js';
import { cancellable } from '../cancel.js';
import { setExamples } from '../help.js';
import { ProgressRenderer, age } from '../progress.js';
import {
  checkTrivyVersion,
  failingComponents,
  importedProblems,
  offlineCommand,
  TRIVY_VERSION_OPTION,
} from '../trivy-command.js';
import { checkPublishArgs, publishOptions, runPublish, type PublishArgs } from './import-publish.js';
import { bundleOptions, verifiedSourceOptions, type BundleArgs } from '../bundle-source.js';
import { resolveCache, resolveVexConfig } from '../locations.js';

interface ImportArgs extends BundleArgs, PublishArgs {
  'cache-dir': string | undefined;
  'vex-config': string | undefined;
  'allow-downgrade': boolean;
  'write-trivy-config': string | undefined;
  'trivy-version': string | undefined;
}

/** The names help and status use: `checks`, not the cache folder `policy`. */
function componentLabel(component: { kind: string; name?: string }): string {
  return component.name === undefined ? component.kind : `${component.kind}/${component.name}`;
}

export function importCommand(context: CommandContext) {
  return {
    command: 'import <bundle>',
    describe: "Verify a bundle and install it into Trivy's cache, atomically per component",
    builder: (yargs: Argv) => {
      setExamples('import', [
        ['$0 import trivy-bundle.tgz --trust signing.pub', "into Trivy's default cache"],
        [
          'cat trivy-bundle.tgz.part-* | $0 import - --trust signing.pub --cache-dir /srv/trivy',
          'from a pipe',
        ],
        ['$0 import old.tgz --trust signing.pub --allow-downgrade', 'install an older bundle on purpose'],
        [
          '$0 import trivy-bundle.tgz --trust signing.pub --no-cache --to-registry registry.example.com/trivy --vex-serve-dir /srv/www/vex --vex-base-url https://web.example.com/vex',
          'publish for the whole site: registry + VEX web server',
        ],
      ]);
      return publishOptions(bundleOptions(yargs))
        .option('cache-dir', {
          type: 'string',
          describe:
            "Trivy's cache dir (default: $TRIVY_CACHE_DIR, else Trivy's default, e.g. ~/.cache/trivy)",
        })
        .option('vex-config', {
          type: 'string',
          describe:
            "Trivy's VEX repository.yaml (default: $XDG_DATA_HOME/.trivy/vex/repository.yaml or ~/.trivy/…)",
        })
        .option('allow-downgrade', {
          type: 'boolean',
          default: false,
          describe: 'install content older than what is installed',
        })
        .option('write-trivy-config', {
          type: 'string',
          describe: 'also write the offline settings as a trivy.yaml (trivy --config FILE)',
        })
        .option('trivy-version', TRIVY_VERSION_OPTION);
    },
    handler: async (args: ImportArgs) => {
      checkTrivyVersion(args['trivy-version']);
      const publishing = checkPublishArgs(args);
      if (!args.cache) {
        const { result, output } = await runPublish(context, args);
        context.out.result(
          {
            ok: true,
            bundleId: result.bundleId,
            manifestDigest: result.manifestDigest,
            signer: result.signature,
            warnings: result.warnings,
            ...output.json,
          },
          [
            `verified bundle ${result.bundleId}; the local Trivy cache was left alone (--no-cache)`,
            ...output.lines,
          ],
        );
        return;
      }
      const cache = resolveCache(context, args['cache-dir']);
      const vexConfigPath = resolveVexConfig(context, args['vex-config']);
      const progress = new ProgressRenderer(context.out);
      let result;
      try {
        result = await cancellable(context, 'import', 'nothing was changed', (signal) =>
          importBundle({
            ...verifiedSourceOptions(context, args),
            allowDowngrade: args['allow-downgrade'],
            cacheDir: cache.path,
            vexConfigPath,
            onProgress: progress.listener,
            ...(signal === undefined ? {} : { signal }),
          }),
        );
      } finally {
        progress.stop();
      }
      // The command follows what is installed now (this bundle and earlier ones), as `status` does.
      const status = await cacheStatus({ cacheDir: result.cacheDir, vexConfigPath });
      const command = offlineCommand(status, cache.defaultPath, args['trivy-version']);
      for (const line of importedProblems(status, result.installed)) context.out.warn(line);
      let trivyConfig: string | undefined;
      if (args['write-trivy-config'] !== undefined) {
        trivyConfig = resolve(context.io.cwd, args['write-trivy-config']);
        await mkdir(dirname(trivyConfig), { recursive: true });
        await writeFile(trivyConfig, command.trivyYaml);
      }
      const published = publishing ? (await runPublish(context, args)).output : undefined;
      const signer =
        result.signature === null
          ? 'NOT VERIFIED (--allow-unsigned)'
          : `key ${result.signature.keyId.slice(0, 16)}… (${result.signature.source})`;
      context.out.result(
        {
          ok: true,
          bundleId: result.bundleId,
          manifestDigest: result.manifestDigest,
          signer: result.signature,
          warnings: result.warnings,
          cacheDir: result.cacheDir,
          vexConfigPath: result.vexConfigPath ?? null,
          installed: result.installed,
          cleaned: result.cleaned,
          trivyFlags: command.flags,
          trivyCommandWorks: command.works,
          trivyConfig: trivyConfig ?? null,
          ...published?.json,
        },
        [
          `imported bundle ${result.bundleId} (signed by ${signer}) into ${result.cacheDir}`,
          ...result.installed.map(
            (component) =>
              `  ${componentLabel(component).padEnd(14)} ${[
                component.version,
                component.updatedAt === undefined
                  ? undefined
                  : `built ${component.updatedAt} (${age(component.updatedAt)})`,
                component.digest === undefined ? undefined : `manifest ${component.digest.slice(0, 19)}`,
                component.downgrade ? 'DOWNGRADE' : undefined,
              ]
                .filter((part) => part !== undefined)
                .join('  ')}`,
          ),
          ...(result.vexConfigPath === undefined
            ? []
            : [`VEX repositories listed in ${result.vexConfigPath}`]),
          '',
          ...(command.works
            ? ['Run Trivy offline with:']
            : [
                'Trivy cannot scan offline with this cache yet:',
                ...failingComponents(status).map((line) => `  ${line}`),
                'Once that is fixed (`trivy-airgap status` checks it), run Trivy offline with:',
              ]),
          `  ${command.line}`,
          ...(trivyConfig === undefined
            ? []
            : [`or: trivy image --config ${shellQuote([trivyConfig])} IMAGE`]),
          ...(published?.lines ?? []),
        ],
      );
    },
  };
}
