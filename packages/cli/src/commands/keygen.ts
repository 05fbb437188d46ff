import { chmod, mkdir, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { KEY_TYPES, generateKeyPair, type KeyType } from '@trivy-airgap/format';
import { CliError } from '../errors.js';
import type { Argv } from 'yargs';
import type { CommandContext } from '../context.js';
import { readPassphrase } from '../passphrase.js';

interface KeygenArgs {
  type: string;
  'out-dir': string;
  'passphrase-file': string | undefined;
}

export function keygenCommand(context: CommandContext) {
  return {
    command: 'keygen',
    describe: 'Create a signing key pair (signing.key, signing.pub) for export bundles',
    builder: (yargs: Argv) =>
      yargs
        .option('type', {
          choices: KEY_TYPES,
          default: 'ecdsa-p256',
          describe: 'key type (ECDSA P-256 signatures verify with `openssl dgst`)',
        })
        .option('out-dir', {
          type: 'string',
          default: '.',
          describe: 'directory for signing.key and signing.pub',
        })
        .option('passphrase-file', {
          type: 'string',
          describe: 'encrypt signing.key with the passphrase in this file',
        })
        .example('$0 keygen --out-dir ~/.trivy-airgap', 'ECDSA P-256 key pair, unencrypted')
        .example(
          '$0 keygen --type ed25519 --passphrase-file pass.txt',
          'Ed25519 key, encrypted with a passphrase',
        ),
    handler: async (args: KeygenArgs) => {
      const outDir = resolve(context.io.cwd, args['out-dir']);
      const passphrase =
        args['passphrase-file'] === undefined
          ? undefined
          : await readPassphrase(resolve(context.io.cwd, args['passphrase-file']));
      const pair = generateKeyPair(args.type as KeyType, passphrase); // yargs enforced `choices`
      await mkdir(outDir, { recursive: true });
      const privatePath = join(outDir, 'signing.key');
      const publicPath = join(outDir, 'signing.pub');
      await writeNew(privatePath, pair.privateKeyPem, 0o600);
      try {
        await writeNew(publicPath, pair.publicKeyPem, 0o644);
      } catch (error) {
        // Leave nothing half made: a private key without its public half is useless and confusing.
        await rm(privatePath, { force: true });
        throw error;
      }
      context.out.result(
        {
          keyId: pair.keyId,
          algorithm: pair.algorithm,
          privateKey: privatePath,
          publicKey: publicPath,
          encrypted: passphrase !== undefined,
        },
        [
          `key id     ${pair.keyId}`,
          `algorithm  ${pair.algorithm}`,
          `private    ${privatePath} (keep it on the connected side; mode 0600${passphrase === undefined ? '' : ', encrypted'})`,
          `public     ${publicPath} (carry it to the isolated hosts: import --trust ${publicPath})`,
        ],
      );
    },
  };
}

async function writeNew(path: string, contents: string, mode: number): Promise<void> {
  try {
    await writeFile(path, contents, { flag: 'wx', mode });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new CliError('OUTPUT_EXISTS', `${path} already exists; keygen never overwrites a key`, {
        hint: 'choose another --out-dir, or move the old key away first',
      });
    }
    throw error;
  }
  await chmod(path, mode); // the umask may have narrowed or widened what `mode` asked for
}
