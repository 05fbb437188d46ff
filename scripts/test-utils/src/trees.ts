import { createHash } from 'node:crypto';
import { existsSync, lstatSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';

/** sha256 over every path, type, link target and file content under `dir`: "byte-for-byte unchanged". */
export function treeHash(dir: string): string {
  const hash = createHash('sha256');
  const walk = (path: string, rel: string): void => {
    const stat = lstatSync(path);
    if (stat.isSymbolicLink()) hash.update(`L ${rel} -> ${readlinkSync(path)}\n`);
    else if (stat.isDirectory()) {
      hash.update(`D ${rel}\n`);
      for (const name of readdirSync(path).sort()) walk(join(path, name), `${rel}/${name}`);
    } else hash.update(`F ${rel} ${createHash('sha256').update(readFileSync(path)).digest('hex')}\n`);
  };
  if (existsSync(dir)) walk(dir, '');
  return hash.digest('hex');
}
