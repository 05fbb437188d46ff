import { isVexRepositoryName } from '@trivy-airgap/format';
import { join } from 'node:path';
import { TrivyError } from './errors.js';

/**
 * Trivy's cache layout (trivy-facts.md: "Cache directory" and the cache paths of each artifact),
 * relative to the cache dir. `fanal/` is Trivy's scan cache: never touch it.
 */
export const CACHE_LAYOUT = {
  db: 'db',
  javaDb: 'java-db',
  policy: 'policy',
  policyContent: 'policy/content',
  policyMetadata: 'policy/metadata.json',
  vex: 'vex',
  vexRepositories: 'vex/repositories',
  scanCache: 'fanal',
} as const;

/** Files of `vex/repositories/<name>/` (trivy-facts.md: "Cache layout"). */
export const VEX_REPOSITORY_FILES = {
  manifest: 'vex-repository.json',
  cacheJson: 'cache.json',
  /** The unpacked repository for spec version 0.1. */
  content: '0.1',
  index: '0.1/index.json',
} as const;

/** `<cacheDir>/vex/repositories/<name>`, refusing a name that is not a plain local name. */
export function vexRepositoryDir(cacheDir: string, name: string): string {
  if (!isVexRepositoryName(name)) {
    throw new TrivyError(
      'REPOSITORY_INVALID',
      `VEX repository name ${JSON.stringify(name)} is not a plain local name`,
    );
  }
  return join(cacheDir, 'vex', 'repositories', name);
}
