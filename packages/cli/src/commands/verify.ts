import { homedir, tmpdir } from 'node:os';
import { resolve } from 'node:path';
import { defaultTrustDirs, verifyBundle, type TrustOptions } from '@trivy-airgap/importer';
import { resolveCacheDirDetailed, resolveVexConfigPath, type ResolvedCacheDir } from '@trivy-airgap/trivy';
import type { Argv } from 'yargs';
import { cancellable } from '../cancel.js';
import type { CommandContext } from '../context.js';
import { setExamples } from '../help.js';
import { UsageError } from '../errors.js';
import { ProgressRenderer, formatBytes, formatDuration } from '../progress.js';

/** Options shared by the commands that read a bundle. */
export interface BundleArgs {
  bundle: string;
  /** One value per --trust; yargs gives a string for one flag, an array for several. */
  trust: string | string[] | undefined;
  'allow-unsigned': boolean;
  'allow-expired': boolean;
}

/**
 * `--trust KEY`, one key per flag (repeat it): an array option would swallow the bundle path in
 * `verify --trust signing.pub trivy-bundle.tgz`, the order cosign and oras users type.
 * Without a value it is a usage error.
 */
export function trustOption(describe: string) {
  return { type: 'string', requiresArg: true, describe } as const;
}

export function bundleOptions<T>(yargs: Argv<T>) {
  return yargs
    .positional('bundle', {
      type: 'string',
      demandOption: true,
      describe: 'the bundle (.tgz), its first split part, or - for standard input',
    })
    .option(
      'trust',
      trustOption(
        'a trusted public key; repeat the flag for several keys (*.pub and *.pem in $XDG_CONFIG_HOME/trivy-airgap/trusted-keys/ and /etc/trivy-airgap/trusted-keys/ are trusted too)',
      ),
    )
    .option('allow-unsigned', {
      type: 'boolean',
      default: false,
      describe: 'accept an unsigned bundle or an untrusted signer (warns loudly)',
    })
    .option('allow-expired', {
      type: 'boolean',
      default: false,
      describe: 'accept a bundle past its expiry',
    });
}

export function trustOptions(
  context: CommandContext,
  trust: string | readonly string[] | undefined,
): TrustOptions {
  const files = trust === undefined ? [] : typeof trust === 'string' ? [trust] : trust;
  return {
    trustFiles: files.map((file) => resolve(context.io.cwd, file)),
    trustDirs: defaultTrustDirs(context.io.env),
  };
}

/** What every verifying command passes to the importer: the source, the trust and the date policy. */
export function verifiedSourceOptions(context: CommandContext, args: BundleArgs) {
  return {
    bundle: bundlePath(context, args.bundle),
    stdin: process.stdin,
    ...trustOptions(context, args.trust),
    allowUnsigned: args['allow-unsigned'],
    allowExpired: args['allow-expired'],
  };
}

export function bundlePath(context: CommandContext, bundle: string): string {
  // yargs hands a lone `-` over as an empty string; an empty path names no bundle anyway.
  if (bundle !== '-' && bundle !== '') return resolve(context.io.cwd, bundle);
  if (process.stdin.isTTY) {
    throw new UsageError(
      '`-` reads the bundle from standard input, which is a terminal',
      'pipe it in: cat trivy-bundle.tgz | trivy-airgap import - …',
    );
  }
  return '-';
}

export function home(context: CommandContext): string {
  return context.io.env.HOME ?? homedir();
}

/** Trivy's cache dir: --cache-dir, then TRIVY_CACHE_DIR, then the OS default (as Trivy resolves it). */
export function resolveCache(context: CommandContext, flag: string | undefined): ResolvedCacheDir {
  const resolved = resolveCacheDirDetailed({
    ...(flag === undefined ? {} : { flag: resolve(context.io.cwd, flag) }),
    env: context.io.env,
    platform: process.platform,
    homedir: home(context),
    tmpdir: tmpdir(),
  });
  return { ...resolved, path: resolve(context.io.cwd, resolved.path) };
}

export function resolveVexConfig(context: CommandContext, flag: string | undefined): string {
  return resolveVexConfigPath({
    ...(flag === undefined ? {} : { flag: resolve(context.io.cwd, flag) }),
    env: context.io.env,
    homedir: home(context),
  });
}

export function age(updatedAt: string | undefined, now = Date.now()): string {
  if (updatedAt === undefined) return '';
  return `${formatDuration(now - Date.parse(updatedAt))} old`;
}

export { formatBytes };

export function verifyCommand(context: CommandContext) {
  return {
    command: 'verify <bundle>',
    describe: 'Check a bundle completely (signature, every size and digest, layer contents); writes nothing',
    builder: (yargs: Argv) => {
      setExamples('verify', [
        ['$0 verify trivy-bundle.tgz --trust signing.pub', 'verify before carrying it further'],
        [
          '$0 verify trivy-bundle.tgz.part-000 --trust signing.pub --json',
          'split parts; every check as JSON',
        ],
      ]);
      return bundleOptions(yargs);
    },
    handler: async (args: BundleArgs) => {
      const progress = new ProgressRenderer(context.out);
      try {
        const result = await cancellable(context, 'verify', 'nothing was written', (signal) =>
          verifyBundle({
            ...verifiedSourceOptions(context, args),
            onProgress: progress.listener,
            ...(signal === undefined ? {} : { signal }),
          }),
        );
        const signer =
          result.signature === null
            ? 'NOT VERIFIED (accepted by --allow-unsigned)'
            : `${result.signature.algorithm} key ${result.signature.keyId} (${result.signature.source})`;
        context.out.result(
          {
            ok: true,
            bundleId: result.bundleId,
            manifestDigest: result.manifestDigest,
            signer: result.signature,
            warnings: result.warnings,
            bytesRead: result.bytesRead,
            checks: result.checks,
          },
          [
            `bundle ${result.bundleId} verified: ${result.checks.length} checks passed`,
            `signed by   ${signer}`,
            `created     ${result.manifest.created}, expires ${result.manifest.expires}`,
            ...result.manifest.components.map((component) =>
              component.kind === 'vex'
                ? `vex         ${component.name} (${component.url}) ${age(component.updatedAt)}`
                : `${component.kind.padEnd(11)} ${component.servedBy}  manifest ${component.manifest.digest.slice(0, 19)}${component.metadata === undefined ? '' : `  ${age(component.metadata.UpdatedAt)}`}`,
            ),
          ],
        );
      } finally {
        progress.stop();
      }
    },
  };
}
