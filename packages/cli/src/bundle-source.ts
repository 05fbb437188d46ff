import { resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { defaultTrustDirs, type TrustOptions } from '@trivy-airgap/importer';
import type { Argv } from 'yargs';
import type { CommandContext } from './context.js';
import { UsageError } from './errors.js';

// The options and resolvers of the commands that read a bundle (verify, inspect, import and its
// publish paths): which bundle, which keys are trusted, which dates are accepted.

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

/** The `<bundle>` argument of every command that reads one. */
export function bundlePositional<T>(yargs: Argv<T>) {
  return yargs.positional('bundle', {
    type: 'string',
    demandOption: true,
    describe: 'the bundle (.tgz), its first split part, or - for standard input',
  });
}

export function bundleOptions<T>(yargs: Argv<T>) {
  return bundlePositional(yargs)
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
    stdin: standardInput(context),
    ...trustOptions(context, args.trust),
    allowUnsigned: args['allow-unsigned'],
    allowExpired: args['allow-expired'],
  };
}

/** Where `-` reads the bundle from: the io's stdin when run() was given one, else the process's. */
export function standardInput(context: CommandContext): Readable & { isTTY?: boolean } {
  return context.io.stdin ?? process.stdin;
}

export function bundlePath(context: CommandContext, bundle: string): string {
  // yargs hands a lone `-` over as an empty string; an empty path names no bundle anyway.
  if (bundle !== '-' && bundle !== '') return resolve(context.io.cwd, bundle);
  if (standardInput(context).isTTY === true) {
    throw new UsageError(
      '`-` reads the bundle from standard input, which is a terminal',
      'pipe it in: cat trivy-bundle.tgz | trivy-airgap import - …',
    );
  }
  return '-';
}
