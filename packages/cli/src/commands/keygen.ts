import { existsSync } from 'node:fs';
import { chmod, mkdir, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { KEY_TYPES, generateKeyPair, type KeyType } from '@trivy-airgap/format';
import { CliError } from '../errors.js';
import type { Argv } from 'yargs';
import type { CommandContext } from '../context.js';
import { setExamples } from '../help.js';
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
    builder: (yargs: Argv) => {
      setExamples('keygen', [
        ['$0 keygen --out-dir ~/.trivy-airgap', 'ECDSA P-256 key pair, unencrypted'],
        ['$0 keygen --type ed25519 --passphrase-file pass.txt', 'Ed25519 key, encrypted with a passphrase'],
      ]);
      return yargs
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
          describe:
            'encrypt signing.key with the passphrase on the first line of this file (or TRIVY_AIRGAP_PASSPHRASE)',
        });
    },
    handler: async (args: KeygenArgs) => {
      const outDir = resolve(context.io.cwd, args['out-dir']);
      const passphrase = await keygenPassphrase(context, args['passphrase-file']);
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

/**
 * The passphrase that encrypts the new key: --passphrase-file, else TRIVY_AIRGAP_PASSPHRASE (the
 * variable export reads to decrypt it), else none. keygen never creates the file itself: a missing
 * one is explained, with how to make it.
 */
async function keygenPassphrase(
  context: CommandContext,
  file: string | undefined,
): Promise<string | undefined> {
  if (file === undefined) {
    const fromEnv = context.io.env.TRIVY_AIRGAP_PASSPHRASE;
    return fromEnv === undefined || fromEnv === '' ? undefined : fromEnv;
  }
  const path = resolve(context.io.cwd, file);
  if (!existsSync(path)) {
    throw new CliError(
      'PASSPHRASE_FILE',
      `the passphrase file ${path} does not exist: keygen encrypts the new key with the passphrase written in it`,
      {
        hint: `create it first, readable only by you, e.g. (umask 077; openssl rand -base64 24 > ${file}); or leave out --passphrase-file for an unencrypted key`,
      },
    );
  }
  return readPassphrase(path);
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
