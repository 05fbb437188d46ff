import {
  acquireCacheLock,
  applyJournal,
  cachePaths,
  commitJournal,
  componentKeyFromUser,
  linkOf,
  readState,
  recoverAndClean,
  type ComponentKey,
  type ComponentState,
  type GenerationRecord,
  type Journal,
  type StepHook,
} from './cache.js';
import { asFileSystemError } from '@trivy-airgap/format';
import { ImporterError } from './errors.js';
import { generationFingerprint } from './fingerprint.js';
import { lstat, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';

export interface RollbackOptions {
  readonly cacheDir: string;
  /** Only these components (`db`, `java-db`, `policy` or `checks`, `vex/<name>`); default all that can. */
  readonly components?: readonly string[];
  readonly clock?: () => Date;
  readonly stepHook?: StepHook;
}

export interface RolledBackComponent {
  readonly key: ComponentKey;
  readonly path: string;
  /** What is installed now. */
  readonly restored: GenerationRecord;
  /** What was installed before (kept as the previous generation: a second rollback undoes this one). */
  readonly replaced: GenerationRecord;
}

export interface RollbackResult {
  readonly cacheDir: string;
  readonly rolledBack: readonly RolledBackComponent[];
  readonly cleaned: readonly string[];
}

/**
 * Restores the previous generation of components, atomically per component, through the same
 * journal as an import. The generation it replaces becomes the previous one, so running rollback
 * again goes forward again.
 */
export async function rollback(options: RollbackOptions): Promise<RollbackResult> {
  const paths = cachePaths(options.cacheDir);
  const clock = options.clock ?? (() => new Date());
  const info = await lstat(paths.stateFile).catch(() => undefined);
  if (info === undefined) {
    throw new ImporterError('NOTHING_TO_ROLL_BACK', `nothing was imported into ${paths.cacheDir} yet`, {
      hint: 'rollback restores what an import replaced; check --cache-dir',
    });
  }
  const lock = await acquireCacheLock(paths, 'rollback').catch((error: unknown) => {
    throw asFileSystemError(error, { where: paths.cacheDir });
  });
  try {
    const cleaned = await recoverAndClean(paths);
    const state = await readState(paths);
    const wanted = options.components?.map(componentKeyFromUser);
    for (const key of wanted ?? []) {
      if (state.components[key] === undefined) {
        throw new ImporterError('NOTHING_TO_ROLL_BACK', `${key} was never imported into ${paths.cacheDir}`, {
          hint: `installed: ${Object.keys(state.components).join(', ') || 'nothing'}`,
        });
      }
    }
    const chosen = Object.values(state.components).filter(
      (component): component is ComponentState & { previous: GenerationRecord } =>
        (wanted === undefined || wanted.includes(component.key)) && component.previous !== undefined,
    );
    if (chosen.length === 0) {
      throw new ImporterError(
        'NOTHING_TO_ROLL_BACK',
        'no component has a previous generation to go back to',
        {
          hint: 'rollback needs an earlier import (or a pre-existing cache) that a later import replaced',
        },
      );
    }
    for (const component of chosen) {
      const link = linkOf(paths, component.key);
      const target = resolve(dirname(link), component.previous.target);
      if ((await stat(target).catch(() => undefined))?.isDirectory() !== true) {
        throw new ImporterError(
          'CACHE_STATE_INVALID',
          `the previous generation of ${component.key} (${target}) is gone; nothing was changed`,
          { path: target, hint: 'import a bundle instead' },
        );
      }
      const recorded = component.previous.fingerprint;
      if (recorded !== undefined && (await generationFingerprint(target)) !== recorded) {
        // Trivy run without the skip flags updates the cache in place, through our links: what is
        // there now is not what was installed, and may be half of an interrupted update.
        throw new ImporterError(
          'CACHE_STATE_INVALID',
          `the previous generation of ${component.key} (${target}) was changed after it was installed (Trivy updates the cache in place when run without the skip flags); nothing was changed`,
          {
            path: target,
            hint: `import a bundle instead${chosen.length > 1 ? ', or roll back the other components with --component' : ''}`,
          },
        );
      }
    }
    const components: Record<ComponentKey, ComponentState> = { ...state.components };
    for (const component of chosen) {
      components[component.key] = { ...component, current: component.previous, previous: component.current };
    }
    const now = clock().toISOString();
    const journal: Journal = {
      version: 1,
      operation: 'rollback',
      startedAt: now,
      links: chosen.map((component) => ({ key: component.key, target: component.previous.target })),
      state: { ...state, updatedAt: now, components },
    };
    await commitJournal(paths, journal);
    await applyJournal(paths, journal, options.stepHook);
    return {
      cacheDir: paths.cacheDir,
      rolledBack: chosen.map((component) => ({
        key: component.key,
        path: linkOf(paths, component.key),
        restored: component.previous,
        replaced: component.current,
      })),
      cleaned: [...cleaned, ...(await recoverAndClean(paths))],
    };
  } catch (error) {
    throw asFileSystemError(error, { where: paths.cacheDir });
  } finally {
    await lock.release();
  }
}
