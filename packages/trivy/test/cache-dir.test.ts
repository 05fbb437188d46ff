import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { resolveCacheDirDetailed, resolveVexConfigPath } from '../src/index.js';
import { defaultCacheDir, resolveCacheDir } from '../src/cache-dir.js';

const linux = { platform: 'linux' as const, homedir: '/home/ana', tmpdir: '/tmp' };

describe('resolveCacheDir (trivy-facts: "Cache directory")', () => {
  it('Linux: ~/.cache/trivy by default', () => {
    assert.equal(resolveCacheDir({ ...linux, env: {} }), '/home/ana/.cache/trivy');
  });
  it('Linux: $XDG_CACHE_HOME/trivy when absolute', () => {
    assert.equal(
      resolveCacheDir({ ...linux, env: { XDG_CACHE_HOME: '/var/cache/ana' } }),
      '/var/cache/ana/trivy',
    );
  });
  it('Linux: a relative $XDG_CACHE_HOME is ignored (only if absolute)', () => {
    assert.equal(
      resolveCacheDir({ ...linux, env: { XDG_CACHE_HOME: 'rel/cache' } }),
      '/home/ana/.cache/trivy',
    );
  });
  it('macOS: ~/Library/Caches/trivy (XDG ignored)', () => {
    assert.equal(
      resolveCacheDir({
        platform: 'darwin',
        homedir: '/Users/ana',
        tmpdir: '/tmp',
        env: { XDG_CACHE_HOME: '/x' },
      }),
      '/Users/ana/Library/Caches/trivy',
    );
  });
  it('Windows: %LocalAppData%\\trivy', () => {
    assert.equal(
      resolveCacheDir({
        platform: 'win32',
        homedir: 'C:\\Users\\ana',
        tmpdir: 'C:\\Temp',
        env: { LocalAppData: 'C:\\Users\\ana\\AppData\\Local' },
      }),
      'C:\\Users\\ana\\AppData\\Local\\trivy',
    );
  });
  it('Windows without LocalAppData: <tmpdir>\\trivy (fallback)', () => {
    const resolved = resolveCacheDirDetailed({
      platform: 'win32',
      homedir: 'C:\\Users\\ana',
      tmpdir: 'C:\\Temp',
      env: {},
    });
    assert.deepEqual(resolved, {
      path: 'C:\\Temp\\trivy',
      source: 'fallback',
      defaultPath: 'C:\\Temp\\trivy',
    });
  });
  it('no home directory: <tmpdir>/trivy', () => {
    assert.deepEqual(defaultCacheDir({ platform: 'linux', homedir: '', tmpdir: '/tmp', env: {} }), {
      path: '/tmp/trivy',
      source: 'fallback',
    });
  });
  it('overrides, strongest first: --cache-dir, TRIVY_CACHE_DIR, cache.dir in trivy.yaml', () => {
    const env = { TRIVY_CACHE_DIR: '/env/cache' };
    assert.deepEqual(resolveCacheDirDetailed({ ...linux, env, flag: '/flag/cache', configFile: '/cfg' }), {
      path: '/flag/cache',
      source: 'flag',
      defaultPath: '/home/ana/.cache/trivy',
    });
    assert.equal(resolveCacheDirDetailed({ ...linux, env, configFile: '/cfg' }).source, 'env');
    assert.equal(resolveCacheDirDetailed({ ...linux, env: {}, configFile: '/cfg' }).path, '/cfg');
    assert.equal(resolveCacheDirDetailed({ ...linux, env: { TRIVY_CACHE_DIR: '' } }).source, 'default');
  });
});

describe('resolveVexConfigPath (trivy-facts: repository.yaml lives outside the cache dir)', () => {
  it('$XDG_DATA_HOME/.trivy/vex/repository.yaml when XDG_DATA_HOME is set', () => {
    assert.equal(
      resolveVexConfigPath({ env: { XDG_DATA_HOME: '/data/ana' }, homedir: '/home/ana', platform: 'linux' }),
      '/data/ana/.trivy/vex/repository.yaml',
    );
  });
  it('~/.trivy/vex/repository.yaml otherwise', () => {
    assert.equal(
      resolveVexConfigPath({ env: {}, homedir: '/home/ana', platform: 'linux' }),
      '/home/ana/.trivy/vex/repository.yaml',
    );
  });
  it('--vex-config wins', () => {
    assert.equal(
      resolveVexConfigPath({ flag: '/etc/r.yaml', env: { XDG_DATA_HOME: '/d' }, homedir: '/h' }),
      '/etc/r.yaml',
    );
  });
});
