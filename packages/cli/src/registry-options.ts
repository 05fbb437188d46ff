import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { asFileSystemError } from '@trivy-airgap/format';
import type { RegistryClientOptions } from '@trivy-airgap/oci';
import type { Argv } from 'yargs';
import type { CommandContext } from './context.js';

/** Registry access flags, named as Trivy names them (trivy-facts.md "Transport and auth"). */
export interface RegistryAccessArgs {
  username: string | undefined;
  password: string | undefined;
  'registry-token': string | undefined;
  'ca-cert': string | undefined;
  insecure: boolean;
  'plain-http': boolean;
}

export const REGISTRY_GROUP = 'Registry access:';

export function registryAccessOptions<T>(yargs: Argv<T>) {
  return yargs
    .option('username', {
      type: 'string',
      group: REGISTRY_GROUP,
      describe: 'registry user (or TRIVY_USERNAME)',
    })
    .option('password', {
      type: 'string',
      group: REGISTRY_GROUP,
      describe: 'registry password (or TRIVY_PASSWORD)',
    })
    .option('registry-token', {
      type: 'string',
      group: REGISTRY_GROUP,
      describe: 'registry Bearer token (or TRIVY_REGISTRY_TOKEN)',
    })
    .option('ca-cert', { type: 'string', group: REGISTRY_GROUP, describe: 'extra CA certificate (PEM)' })
    .option('insecure', {
      type: 'boolean',
      default: false,
      group: REGISTRY_GROUP,
      describe: 'skip TLS verification',
    })
    .option('plain-http', {
      type: 'boolean',
      default: false,
      group: REGISTRY_GROUP,
      describe: 'talk plain HTTP to the registry',
    });
}

/** The PEM of `--ca-cert`, if given (relative paths from the working directory). */
export async function readCaCert(
  context: CommandContext,
  args: RegistryAccessArgs,
): Promise<string | undefined> {
  if (args['ca-cert'] === undefined) return undefined;
  const path = resolve(context.io.cwd, args['ca-cert']);
  return readFile(path, 'utf8').catch((error: unknown) => {
    throw asFileSystemError(error, { where: path, pathHint: 'check the --ca-cert path (a PEM file)' });
  });
}

/** Explicit flags first, then Trivy's environment variables (TRIVY_USERNAME, …). */
export function registryCredentialArgs(context: CommandContext, args: RegistryAccessArgs) {
  const { env } = context.io;
  return {
    username: args.username ?? env.TRIVY_USERNAME,
    password: args.password ?? env.TRIVY_PASSWORD,
    registryToken: args['registry-token'] ?? env.TRIVY_REGISTRY_TOKEN,
  };
}

/** The RegistryClient settings for these flags: explicit flags, then TRIVY_* variables, then Docker's config. */
export async function registryClientOptions(
  context: CommandContext,
  args: RegistryAccessArgs,
): Promise<RegistryClientOptions> {
  const { io } = context;
  const caCertPem = await readCaCert(context, args);
  return {
    transport: {
      userAgent: `trivy-airgap/${context.toolVersion}`,
      caCertPem,
      insecure: args.insecure,
      plainHttp: args['plain-http'],
      env: io.env,
    },
    credentials: { ...registryCredentialArgs(context, args), env: io.env },
  };
}
