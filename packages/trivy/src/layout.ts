import { isVexRepositoryName } from '@trivy-airgap/format';
import { join } from 'node:path';
import { COMPONENTS, componentCachePath } from './components.js';
import { TrivyError } from './errors.js';

/**
 * Trivy's cache layout (trivy-facts.md: "Cache directory"), relative to the cache dir, as the
 * component table spells it. `fanal/` is Trivy's scan cache: never touch it.
 */
export const CACHE_LAYOUT = {
  db: COMPONENTS.db.cacheDir,
  javaDb: COMPONENTS['java-db'].cacheDir,
  policy: COMPONENTS.checks.cacheDir,
  policyContent: `${COMPONENTS.checks.cacheDir}/${COMPONENTS.checks.layerPath}`,
  policyMetadata: `${COMPONENTS.checks.cacheDir}/${COMPONENTS.checks.metadataFile}`,
  vex: COMPONENTS.vex.cachePath.split('/')[0] ?? 'vex',
  vexRepositories: COMPONENTS.vex.cachePath,
  scanCache: 'fanal',
} as const;

/** Files of `vex/repositories/<name>/` (trivy-facts.md: "Cache layout"). */
export const VEX_REPOSITORY_FILES = COMPONENTS.vex.files;

/** `<cacheDir>/vex/repositories/<name>`, refusing a name that is not a plain local name. */
export function vexRepositoryDir(cacheDir: string, name: string): string {
  if (!isVexRepositoryName(name)) {
    throw new TrivyError(
      'REPOSITORY_INVALID',
      `VEX repository name ${JSON.stringify(name)} is not a plain local name`,
    );
  }
  return join(cacheDir, ...componentCachePath('vex', name).split('/'));
}
