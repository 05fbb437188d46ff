import { verifyBundle } from '@trivy-airgap/importer';
import type { Argv } from 'yargs';
import { bundleOptions, verifiedSourceOptions, type BundleArgs } from '../bundle-source.js';
import { cancellable } from '../cancel.js';
import type { CommandContext } from '../context.js';
import { setExamples } from '../help.js';
import { ProgressRenderer, age } from '../progress.js';

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
