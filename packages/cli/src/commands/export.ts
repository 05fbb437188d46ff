import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  EXPORT_COMPONENT_KINDS,
  exportBundle,
  ExporterError,
  parseDuration,
  parseSize,
  parseVexRepositorySpecs,
  type ExportComponentKind,
  type ExportOptions,
  type ExportResult,
} from '@trivy-airgap/exporter';
import { ARTIFACTS, ARTIFACT_KINDS, COMPONENTS, type ArtifactKind } from '@trivy-airgap/trivy';
import {
  asFileSystemError,
  loadSigningKey,
  type SignatureAlgorithm,
  type SigningKey,
} from '@trivy-airgap/format';
import type { Argv } from 'yargs';
import type { CommandContext } from '../context.js';
import { cancellable } from '../cancel.js';
import { setExamples } from '../help.js';
import { CliError, UsageError } from '../errors.js';
import { gateCheckCommands } from '../gate-check.js';
import { readPassphrase } from '../passphrase.js';
import {
  readCaCert,
  registryAccessOptions,
  registryCredentialArgs,
  type RegistryAccessArgs,
} from '../registry-options.js';
import { ProgressRenderer, formatBytes, formatDuration } from '../progress.js';

/**
 * The flags named in the component table: one per kind to pick it (`--db`, `--java-db`, …) and
 * each artifact's repository flag (`--db-repository`, …, the table's repositoryFlag).
 */
type TableArgs = { [K in ExportComponentKind]: boolean };

interface ExportArgs extends RegistryAccessArgs, TableArgs {
  all: boolean;
  output: string;
  key: string | undefined;
  unsigned: boolean | undefined;
  'passphrase-file': string | undefined;
  'vex-repository': string[] | undefined;
  'trivy-version': string | undefined;
  split: string | undefined;
  expires: string;
  force: boolean;
  'work-dir': string | undefined;
  'verify-mirrors': boolean;
  'with-tool': boolean;
}

declare const __TRIVY_AIRGAP_VERSION__: string | undefined;

/**
 * The single-file CLI to carry with `--with-tool`: this very file when running as the single-file
 * build, else the build output next to the compiled CLI (packages/cli/dist/trivy-airgap.mjs).
 */
function singleFileTool(): string {
  if (typeof __TRIVY_AIRGAP_VERSION__ === 'string') return fileURLToPath(import.meta.url);
  return fileURLToPath(new URL('../../trivy-airgap.mjs', import.meta.url));
}

const SOURCE_GROUP = 'Sources (default: what the targeted Trivy release uses):';

/** A value the exporter refuses is a usage error that names the flag it came from. */
function forFlag<T>(flag: string, parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    if (error instanceof ExporterError && error.code === 'INVALID_OPTION') {
      throw new UsageError(`${flag}: ${error.message}`, error.hint);
    }
    throw error;
  }
}

async function readSigningKey(args: ExportArgs, context: CommandContext): Promise<SigningKey | null> {
  if (args.unsigned === true) return null;
  if (args.key === undefined) {
    throw new UsageError(
      'a bundle must be signed: pass --key signing.key, or --unsigned to export without a signature',
      'create a key pair with `trivy-airgap keygen`',
    );
  }
  const path = resolve(context.io.cwd, args.key);
  const pem = await readFile(path, 'utf8').catch((error: unknown) => {
    throw asFileSystemError(error, {
      where: path,
      pathHint: 'check the --key path (trivy-airgap keygen writes signing.key)',
    });
  });
  const passphrase =
    args['passphrase-file'] !== undefined
      ? await readPassphrase(resolve(context.io.cwd, args['passphrase-file']))
      : context.io.env.TRIVY_AIRGAP_PASSPHRASE;
  return loadSigningKey(pem, { source: path, ...(passphrase === undefined ? {} : { passphrase }) });
}

function selectedComponents(args: ExportArgs): ExportComponentKind[] {
  // The flags are named after the kinds (--db, --java-db, --checks, --vex), in the table's order.
  const kinds = EXPORT_COMPONENT_KINDS.filter((kind) => args.all || args[kind]);
  if (kinds.length === 0) {
    const flags = EXPORT_COMPONENT_KINDS.map((kind) => `--${kind}`).join(' ');
    throw new UsageError('nothing to export', `pass --all, or any of ${flags}`);
  }
  return kinds;
}

/** The table's repository flag of an artifact, without its dashes (`db-repository`). */
function repositoryOption(kind: ArtifactKind): string {
  return ARTIFACTS[kind].repositoryFlag.replace(/^--/, '');
}

/** Each artifact's repositories as given on the command line (none: the targeted Trivy's). */
function givenRepositories(args: ExportArgs): ExportOptions['repositories'] {
  const given: { [K in ArtifactKind]?: readonly string[] } = {};
  for (const kind of ARTIFACT_KINDS) {
    // Typed by name nowhere: the option exists because the table row does.
    const value = (args as unknown as Readonly<Record<string, unknown>>)[repositoryOption(kind)];
    if (typeof value === 'string') given[kind] = [value];
    else if (Array.isArray(value))
      given[kind] = value.filter((item): item is string => typeof item === 'string');
  }
  return given;
}

/** `--<kind>` and each artifact's repository flag, from the component table. */
function tableOptions<T>(yargs: Argv<T>): Argv<T & TableArgs> {
  for (const kind of EXPORT_COMPONENT_KINDS) {
    const facts = COMPONENTS[kind];
    const label = facts.perRepository ? `${facts.label.replace(/y$/, 'ie')}s` : facts.label;
    yargs.option(kind, { type: 'boolean', default: false, describe: `the ${label}` });
  }
  for (const kind of ARTIFACT_KINDS) {
    const facts = ARTIFACTS[kind];
    yargs.option(repositoryOption(kind), {
      type: 'string',
      array: facts.repositoryList,
      group: SOURCE_GROUP,
      describe: facts.repositoryList
        ? `${facts.label} repositories, in fallback order`
        : `${facts.label} repository`,
    });
  }
  // yargs types each .option() call statically; options made in a loop are typed here, once.
  return yargs as Argv<T & TableArgs>;
}

function shortDigest(digest: string): string {
  return digest.slice(0, 'sha256:'.length + 12);
}

function age(verb: string, timestamp: string | undefined, now: number): string {
  const ms = timestamp === undefined ? Number.NaN : now - Date.parse(timestamp);
  return Number.isFinite(ms) ? `, ${verb} ${formatDuration(ms)} ago` : '';
}

function jsonSummary(result: ExportResult) {
  const { bundle, manifest } = result;
  return {
    bundle: {
      path: bundle.path,
      size: bundle.size,
      sha256: bundle.digest,
      parts: bundle.files.length > 1 || bundle.files[0]?.path !== bundle.path ? bundle.files : [],
      checksumFile: bundle.checksumPath,
      checksumSignature: bundle.checksumSignaturePath,
      companions: bundle.companions,
    },
    manifest: {
      bundleId: manifest.bundleId,
      created: manifest.created,
      expires: manifest.expires,
      signer: manifest.signer,
      trivyVersions: manifest.trivyVersions,
      digest: bundle.manifestDigest,
      files: manifest.files.length,
    },
    components: result.components,
    workDir: result.workDir,
    gateCheck: gateCheckCommands(basename(bundle.checksumPath), signerAlgorithm(result)),
  };
}

/** The signer's algorithm, when the checksum file was signed. */
function signerAlgorithm(result: ExportResult): SignatureAlgorithm | null {
  return result.bundle.checksumSignaturePath === null ? null : (result.manifest.signer?.algorithm ?? null);
}

function humanSummary(result: ExportResult): string[] {
  const now = Date.now();
  const lines = result.components.map((component) => {
    const name = component.kind === 'vex' ? `vex/${component.name ?? ''}` : component.kind;
    const version = component.version === undefined ? '' : `, version ${component.version}`;
    // Labelled: verify and import show the manifest digest; the layer digest is the one every mirror shares.
    const digests =
      component.layerDigest === undefined
        ? `archive ${shortDigest(component.digest)}`
        : `manifest ${shortDigest(component.digest)}  layer ${shortDigest(component.layerDigest)}`;
    return `${name.padEnd(12)} ${formatBytes(component.size).padStart(9)}  ${digests}  from ${component.servedBy}${version}${component.updatedAt === undefined ? age('published', component.published, now) : age('built', component.updatedAt, now)}`;
  });
  const { bundle } = result;
  const checksumName = basename(bundle.checksumPath);
  lines.push(
    '',
    bundle.files.length === 1 && bundle.files[0]?.path === bundle.path
      ? `bundle       ${bundle.path} (${formatBytes(bundle.size)}, ${shortDigest(bundle.digest)})`
      : `bundle       ${bundle.files.length} part${bundle.files.length === 1 ? '' : 's'} of ${bundle.path} (${formatBytes(bundle.size)}; rejoin with cat ${basename(bundle.path)}.part-* > ${basename(bundle.path)})`,
    `checksums    ${bundle.checksumPath}${bundle.checksumSignaturePath === null ? ' (unsigned)' : ` + ${basename(bundle.checksumSignaturePath)}`}`,
    ...bundle.companions.map((file) => `with         ${file.path} (listed in ${checksumName})`),
    `expires      ${result.manifest.expires}`,
    '',
    bundle.checksumSignaturePath === null
      ? 'Carry the bundle with its .sha256; before it enters the isolated network:'
      : 'Carry the bundle with its .sha256 and .sha256.sig; before it enters the isolated network:',
    `  ${gateCheckCommands(checksumName, signerAlgorithm(result)).join(' && ')}`,
  );
  return lines;
}

export function exportCommand(context: CommandContext) {
  return {
    command: 'export',
    describe: "Download Trivy's DB, Java DB, checks bundle and VEX repositories into one signed bundle",
    builder: (yargs: Argv) => {
      setExamples('export', [
        ['$0 export --all --key signing.key -o trivy-bundle.tgz', 'everything, signed'],
        [
          '$0 export --db --checks --trivy-version 0.57.1 --key signing.key -o old-trivy.tgz',
          'content an older Trivy accepts (ghcr.io DBs, checks :1)',
        ],
        [
          '$0 export --all --key signing.key --split 700M -o bundle.tgz',
          'parts of at most 700 MiB (bundle.tgz.part-000, …)',
        ],
        [
          '$0 export --vex --vex-repository internal=https://vex.example.com --unsigned -o vex.tgz',
          'one extra VEX repository, unsigned',
        ],
      ]);
      return tableOptions(
        registryAccessOptions(yargs).option('all', {
          type: 'boolean',
          default: false,
          describe: 'export every component',
        }),
      )
        .option('output', { alias: 'o', type: 'string', demandOption: true, describe: 'bundle path (.tgz)' })
        .option('key', { type: 'string', describe: 'PEM private key that signs the bundle' })
        .option('unsigned', {
          type: 'boolean',
          // no default: yargs would count `false` as given and trip the --key conflict
          describe: 'export without a signature (explicit)',
        })
        .option('passphrase-file', {
          type: 'string',
          describe: 'passphrase of an encrypted --key, first line of this file (or TRIVY_AIRGAP_PASSPHRASE)',
        })
        .option('split', { type: 'string', describe: 'cut the bundle into parts of SIZE (4G, 700M, …)' })
        .option('expires', { type: 'string', default: '30d', describe: 'validity (30d, 12h, 2w, …)' })
        .option('force', { type: 'boolean', default: false, describe: 'replace an existing bundle' })
        .option('work-dir', { type: 'string', describe: 'download cache (default: user cache dir)' })
        .option('verify-mirrors', {
          type: 'boolean',
          default: false,
          describe: 'refuse unless a second registry serves the same layer digest',
        })
        .option('vex-repository', {
          type: 'string',
          array: true,
          group: SOURCE_GROUP,
          describe: 'VEX repository [NAME=]URL (repeatable)',
        })
        .option('trivy-version', {
          type: 'string',
          group: SOURCE_GROUP,
          describe: 'pick the sources and tags this Trivy release uses',
        })
        .option('with-tool', {
          type: 'boolean',
          default: false,
          describe: 'write the single-file trivy-airgap.mjs beside the bundle, listed in the checksum file',
        })
        .conflicts('key', 'unsigned');
    },
    handler: async (args: ExportArgs) => {
      const { io, out } = context;
      const components = selectedComponents(args);
      const split = args.split;
      const splitSize = split === undefined ? undefined : forFlag('--split', () => parseSize(split));
      const expiresInMs = forFlag('--expires', () => parseDuration(args.expires));
      const vexSpecs = args['vex-repository'];
      const vexRepositories =
        vexSpecs === undefined
          ? undefined
          : forFlag('--vex-repository', () => parseVexRepositorySpecs(vexSpecs));
      const signingKey = await readSigningKey(args, context);
      const caCertPem = await readCaCert(context, args);
      let companions: string[] | undefined;
      if (args['with-tool']) {
        const tool = singleFileTool();
        if (!existsSync(tool)) {
          throw new CliError('TOOL_MISSING', `the single-file build ${tool} is missing`, {
            hint: 'run `pnpm build` first (it writes packages/cli/dist/trivy-airgap.mjs)',
          });
        }
        companions = [tool];
      }
      if (signingKey === null)
        out.warn('the bundle is unsigned: the isolated side cannot check where it came from');

      const renderer = new ProgressRenderer(out);
      let result: ExportResult;
      try {
        result = await cancellable(
          context,
          'export',
          'no bundle was written (what was downloaded stays in the work dir: the next run resumes)',
          (signal) =>
            exportBundle({
              output: resolve(io.cwd, args.output),
              components,
              repositories: givenRepositories(args),
              vexRepositories,
              trivyVersion: args['trivy-version'],
              signingKey,
              expiresInMs,
              splitSize,
              force: args.force,
              workDir: args['work-dir'] === undefined ? undefined : resolve(io.cwd, args['work-dir']),
              registry: {
                ...registryCredentialArgs(context, args),
                caCertPem,
                insecure: args.insecure,
                plainHttp: args['plain-http'],
              },
              verifyMirrors: args['verify-mirrors'],
              companions,
              toolVersion: context.toolVersion,
              env: io.env,
              onProgress: renderer.listener,
              signal,
            }),
        );
      } finally {
        renderer.stop();
      }
      out.result(jsonSummary(result), humanSummary(result));
    },
  };
}
