import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The files Trivy reads under a cache dir, as Trivy sees them (symlinked generations followed),
 * path → bytes. Our own state (`.trivy-airgap/`) and Trivy's scan cache (`fanal/`) are not content.
 */
export function cacheFiles(cacheDir: string): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  const walk = (dir: string, rel: string): void => {
    for (const name of readdirSync(dir).sort()) {
      if (rel === '' && (name === '.trivy-airgap' || name === 'fanal')) continue;
      const path = join(dir, name);
      const relPath = rel === '' ? name : `${rel}/${name}`;
      const stat = statSync(path);
      if (stat.isDirectory()) walk(path, relPath);
      else if (stat.isFile()) files.set(relPath, readFileSync(path));
    }
  };
  if (existsSync(cacheDir)) walk(cacheDir, '');
  return files;
}

/** Paths whose bytes differ, and paths only one side has. */
export interface TreeDifference {
  readonly onlyLeft: string[];
  readonly onlyRight: string[];
  readonly differ: string[];
}

export function compareTrees(
  left: ReadonlyMap<string, Buffer>,
  right: ReadonlyMap<string, Buffer>,
  normalize: (path: string, bytes: Buffer) => Buffer = (_path, bytes) => bytes,
): TreeDifference {
  const onlyLeft = [...left.keys()].filter((path) => !right.has(path));
  const onlyRight = [...right.keys()].filter((path) => !left.has(path));
  const differ = [...left.keys()].filter((path) => {
    const other = right.get(path);
    return other !== undefined && !normalize(path, left.get(path)!).equals(normalize(path, other));
  });
  return { onlyLeft, onlyRight, differ };
}
