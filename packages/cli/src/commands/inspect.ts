import { inspectBundle } from '@trivy-airgap/importer';
import type { Argv } from 'yargs';
import type { CommandContext } from '../context.js';
import { setExamples } from '../help.js';
import { checksumNameOf, gateCheckCommands } from '../gate-check.js';
import { bundlePath, bundlePositional, standardInput, trustOption, trustOptions } from '../bundle-source.js';
import { age, formatBytes } from '../progress.js';

interface InspectArgs {
  bundle: string;
  trust: string | string[] | undefined;
}

const SIGNATURE_TEXT: Record<string, string> = {
  verified: 'verified',
  untrusted: 'signer not among the trusted keys',
  invalid: 'DOES NOT MATCH (the manifest was changed)',
  unsigned: 'UNSIGNED',
  'not-checked': 'not checked (no trusted key configured)',
};

export function inspectCommand(context: CommandContext) {
  return {
    command: 'inspect <bundle>',
    describe: 'Show what a bundle holds (components, sources, digests, ages, expiry, signer); no key needed',
    builder: (yargs: Argv) => {
      setExamples('inspect', [
        ['$0 inspect trivy-bundle.tgz', 'what is inside and how old it is'],
        ['$0 inspect trivy-bundle.tgz --json | jq .components', 'as JSON'],
      ]);
      return bundlePositional(yargs).option(
        'trust',
        trustOption('a public key to report the signature status against (repeatable; optional)'),
      );
    },
    handler: async (args: InspectArgs) => {
      const bundle = bundlePath(context, args.bundle);
      const result = await inspectBundle({
        bundle,
        stdin: standardInput(context),
        ...trustOptions(context, args.trust),
      });
      const gateCheck = gateCheckCommands(
        bundle === '-' ? '<bundle>.sha256' : checksumNameOf(bundle),
        result.signer?.algorithm ?? null,
      );
      const summary: Record<string, unknown> = { ...result, gateCheck };
      delete summary.manifest;
      context.out.result(summary, [
        `bundle      ${result.bundleId}${result.size === undefined ? '' : ` (${formatBytes(result.size)})`}`,
        `created     ${result.created} by ${result.tool.name} ${result.tool.version}`,
        `expires     ${result.expires}${result.expired ? '  EXPIRED' : ''}`,
        `signer      ${result.signer === null ? 'none' : `${result.signer.algorithm} key ${result.signer.keyId}`}`,
        `signature   ${SIGNATURE_TEXT[result.signature] ?? result.signature}${result.verifiedBy === undefined ? '' : ` by ${result.verifiedBy}`}`,
        `for Trivy   ${result.trivyVersions}`,
        `content     ${result.fileCount} files, ${formatBytes(result.contentBytes)}`,
        '',
        ...result.components.flatMap((component) => [
          `${component.kind}${component.name === undefined ? '' : ` ${component.name}`}`,
          `  source      ${component.source}${component.servedBy === component.source ? '' : ` (served by ${component.servedBy})`}`,
          ...(component.manifestDigest === undefined ? [] : [`  manifest    ${component.manifestDigest}`]),
          ...(component.layerDigest === undefined
            ? []
            : [`  layer       ${component.layerDigest} (${formatBytes(component.size ?? 0)})`]),
          ...(component.location === undefined ? [] : [`  location    ${component.location}`]),
          ...(component.version === undefined ? [] : [`  version     ${component.version}`]),
          ...(component.updatedAt === undefined
            ? []
            : [`  updated     ${component.updatedAt} (${age(component.updatedAt)})`]),
        ]),
        '',
        'check it with stock tools where it lies with its .sha256 files:',
        `  ${gateCheck.join(' && ')}`,
        'inspect reads only the manifest: run `trivy-airgap verify` to check the content.',
      ]);
    },
  };
}
