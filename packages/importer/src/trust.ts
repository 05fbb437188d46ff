import { readFile, readdir } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { FormatError, asFileSystemError, loadTrustedKey, type TrustedKey } from '@trivy-airgap/format';

/** Trust directories, strongest first: the user's, then the system's. */
export function defaultTrustDirs(env: NodeJS.ProcessEnv = process.env): string[] {
  const xdg = env.XDG_CONFIG_HOME;
  const configHome = xdg !== undefined && xdg.startsWith('/') ? xdg : join(env.HOME ?? homedir(), '.config');
  return [join(configHome, 'trivy-airgap', 'trusted-keys'), '/etc/trivy-airgap/trusted-keys'];
}

export interface TrustOptions {
  /** Public key files given with --trust (read; a bad one is an error). */
  readonly trustFiles?: readonly string[];
  /** Directories whose `*.pub` and `*.pem` files are trusted; missing directories are skipped. */
  readonly trustDirs?: readonly string[];
}

/**
 * Loads every trusted public key: explicit files first, then `*.pub` and `*.pem` (the name openssl
 * users give a public key) of the trust directories.
 * A key file that is not a public key is an error (it would otherwise silently trust nothing).
 */
export async function loadTrustedKeys(options: TrustOptions): Promise<TrustedKey[]> {
  const keys: TrustedKey[] = [];
  const seen = new Set<string>();
  const add = (key: TrustedKey): void => {
    if (seen.has(key.keyId)) return;
    seen.add(key.keyId);
    keys.push(key);
  };
  for (const file of options.trustFiles ?? []) {
    const pem = await readFile(file, 'utf8').catch((error: unknown) => {
      throw asFileSystemError(error, {
        where: file,
        pathHint: 'pass the public key file the exporter made (signing.pub) with --trust',
      });
    });
    add(loadTrustedKey(pem, file));
  }
  for (const dir of options.trustDirs ?? []) {
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      continue;
    }
    for (const name of names.filter((n) => n.endsWith('.pub') || n.endsWith('.pem')).sort()) {
      const path = join(dir, name);
      const pem = await readFile(path, 'utf8').catch((error: unknown) => {
        throw asFileSystemError(error, { where: path });
      });
      add(loadTrustedKey(pem, path));
    }
  }
  return keys;
}

/** NO_TRUSTED_KEYS with the directories that were looked in, so the user knows where to put a key. */
export function explainMissingTrust(error: unknown, options: TrustOptions): unknown {
  if (!(error instanceof FormatError) || error.code !== 'NO_TRUSTED_KEYS') return error;
  const dirs = options.trustDirs ?? [];
  return new FormatError(
    'NO_TRUSTED_KEYS',
    'no trusted key: the bundle is signed, but no public key was given',
    {
      cause: error,
      hint: `pass --trust signing.pub${dirs.length === 0 ? '' : `, or put it in ${dirs.join(' or ')}`}`,
    },
  );
}
