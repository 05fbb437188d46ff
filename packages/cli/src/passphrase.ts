import { readFile } from 'node:fs/promises';
import { AirgapError } from '@trivy-airgap/format';

/** Reads a passphrase file: its first line, without the line ending. */
export async function readPassphrase(path: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new AirgapError('PASSPHRASE_FILE', `cannot read the passphrase file ${path}`, { cause: error });
  }
  const passphrase = text.split(/\r?\n/, 1)[0] ?? '';
  if (passphrase.length === 0) {
    throw new AirgapError('PASSPHRASE_FILE', `the passphrase file ${path} is empty`);
  }
  return passphrase;
}
