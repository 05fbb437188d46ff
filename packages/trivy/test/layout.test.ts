import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { CACHE_LAYOUT, VEX_REPOSITORY_FILES, vexRepositoryDir } from '../src/layout.js';
import { throwsCode } from './helpers.js';

describe('cache layout (trivy-facts: subdirectories and the VEX cache layout)', () => {
  it('names the directories Trivy uses', () => {
    assert.deepEqual(
      [
        CACHE_LAYOUT.db,
        CACHE_LAYOUT.javaDb,
        CACHE_LAYOUT.policy,
        CACHE_LAYOUT.vexRepositories,
        CACHE_LAYOUT.scanCache,
      ],
      ['db', 'java-db', 'policy', 'vex/repositories', 'fanal'],
    );
    assert.deepEqual(VEX_REPOSITORY_FILES, {
      manifest: 'vex-repository.json',
      cacheJson: 'cache.json',
      content: '0.1',
      index: '0.1/index.json',
    });
  });
  it('vexRepositoryDir joins a plain name and refuses anything else', () => {
    assert.equal(vexRepositoryDir('/c', 'default'), join('/c', 'vex', 'repositories', 'default'));
    for (const name of ['..', '../x', 'a/b', '', '.hidden']) {
      throwsCode(() => vexRepositoryDir('/c', name), 'REPOSITORY_INVALID');
    }
  });
});
