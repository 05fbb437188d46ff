import { readFile } from 'node:fs/promises';
import { asFileSystemError } from '@trivy-airgap/format';
import { CliError } from './errors.js';

/** Reads a passphrase file: its first line, without the line ending. */
export async function readPassphrase(path: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw asFileSystemError(error, { where: path, pathHint: 'check the --passphrase-file path' });
  }
  const passphrase = text.split(/\r?\n/, 1)[0] ?? '';
  if (passphrase.length === 0) {
    throw new CliError('PASSPHRASE_FILE', `the passphrase file ${path} is empty`);
  }
  return passphrase;
}
