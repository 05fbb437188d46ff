import { basename } from 'node:path';
import { opensslVerifyArgs, type SignatureAlgorithm } from '@trivy-airgap/format';
import { shellQuote } from '@trivy-airgap/trivy';

/** `<bundle>.sha256` beside a bundle (or beside its split parts), as the exporter names it. */
export function checksumNameOf(bundlePath: string): string {
  return `${basename(bundlePath).replace(/\.part-\d{3}$/, '')}.sha256`;
}

/**
 * The commands that check a bundle with stock tools before it enters the isolated network, run
 * where the bundle and its checksum files lie: the signature of the checksum file (with the openssl
 * command that works for the signer's key type), then every file's sha256.
 */
export function gateCheckCommands(checksumName: string, algorithm: SignatureAlgorithm | null): string[] {
  const signature =
    algorithm === null
      ? []
      : [
          shellQuote(
            opensslVerifyArgs(algorithm, {
              publicKey: 'signing.pub',
              signature: `${checksumName}.sig`,
              signed: checksumName,
            }),
          ),
        ];
  return [...signature, shellQuote(['sha256sum', '-c', checksumName])];
}
