import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { digestOfBytes } from '@trivy-airgap/format';
import { OciError, formatReference, parseImageManifest, parseReference } from '../src/index.js';
import { parseAuthChallenge } from '../src/auth.js';
import { resolveCredentials } from '../src/credentials.js';
import { registryApiHost } from '../src/reference.js';
import { parseRetryAfter } from '../src/transport.js';

const work = await mkdtemp(join(tmpdir(), 'airgap-oci-unit-'));
after(() => rm(work, { recursive: true, force: true }));

const DIGEST = digestOfBytes('x');

describe('parseReference', () => {
  it('applies the Docker Hub rules', () => {
    assert.deepEqual(parseReference('alpine'), {
      registry: 'docker.io',
      repository: 'library/alpine',
      tag: undefined,
      digest: undefined,
    });
    assert.deepEqual(parseReference('aquasec/trivy-db:2'), {
      registry: 'docker.io',
      repository: 'aquasec/trivy-db',
      tag: '2',
      digest: undefined,
    });
    assert.equal(parseReference('index.docker.io/aquasec/trivy-db').registry, 'docker.io');
    assert.equal(parseReference('docker.io/alpine:3').repository, 'library/alpine');
    assert.equal(registryApiHost('docker.io'), 'index.docker.io');
    assert.equal(registryApiHost('ghcr.io'), 'ghcr.io');
  });

  it('reads registries with ports, localhost, tags and digests', () => {
    assert.deepEqual(parseReference('mirror.gcr.io/aquasec/trivy-db:2'), {
      registry: 'mirror.gcr.io',
      repository: 'aquasec/trivy-db',
      tag: '2',
      digest: undefined,
    });
    assert.deepEqual(parseReference(`127.0.0.1:5000/a/b:c@${DIGEST}`), {
      registry: '127.0.0.1:5000',
      repository: 'a/b',
      tag: 'c',
      digest: DIGEST,
    });
    assert.equal(parseReference('localhost/trivy-db').registry, 'localhost');
    assert.equal(parseReference('localhost:5000/trivy-db').tag, undefined);
    assert.equal(
      formatReference(parseReference('ghcr.io/aquasecurity/trivy-java-db:1')),
      'ghcr.io/aquasecurity/trivy-java-db:1',
    );
    assert.equal(formatReference(parseReference('alpine')), 'docker.io/library/alpine');
  });

  it('refuses malformed references with INVALID_REFERENCE', () => {
    for (const bad of [
      '',
      'UPPER/case',
      'ghcr.io/a//b',
      'a:b:c',
      'ghcr.io/a@sha256:abc',
      'ghcr.io/a@md5:00',
      'ghcr.io/',
      'a:',
    ]) {
      assert.throws(
        () => parseReference(bad),
        (e: unknown) => e instanceof OciError && e.code === 'INVALID_REFERENCE',
        bad,
      );
    }
  });
});

describe('WWW-Authenticate challenges', () => {
  it('reads Bearer realm, service and several space-separated scopes', () => {
    assert.deepEqual(
      parseAuthChallenge(
        'Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a:pull,push repository:b:pull"',
      ),
      {
        scheme: 'bearer',
        realm: 'https://auth.example/token',
        service: 'registry.example',
        scopes: ['repository:a:pull,push', 'repository:b:pull'],
      },
    );
    assert.deepEqual(parseAuthChallenge('Basic realm="Registry Realm"'), {
      scheme: 'basic',
      realm: 'Registry Realm',
    });
    assert.equal(parseAuthChallenge('Negotiate abc'), undefined);
    assert.equal(parseAuthChallenge(undefined), undefined);
  });
});

describe('Retry-After', () => {
  it('reads Retry-After as seconds or an HTTP date', () => {
    assert.equal(parseRetryAfter('7'), 7000);
    assert.equal(
      parseRetryAfter(new Date(Date.UTC(2030, 0, 1, 0, 0, 10)).toUTCString(), Date.UTC(2030, 0, 1)),
      10_000,
    );
    assert.equal(parseRetryAfter('soon'), undefined);
    assert.equal(parseRetryAfter(undefined), undefined);
  });
});

describe('manifest parsing', () => {
  it('names every invalid field', () => {
    const bad = Buffer.from(
      JSON.stringify({
        schemaVersion: 1,
        config: { mediaType: 3, digest: 'sha256:zz', size: -1 },
        layers: [{}],
      }),
    );
    try {
      parseImageManifest(bad);
      assert.fail('parsed');
    } catch (error) {
      assert.ok(error instanceof OciError);
      assert.equal(error.code, 'MANIFEST_INVALID');
      for (const field of [
        'schemaVersion',
        'config.mediaType',
        'config.digest',
        'config.size',
        'layers[0].mediaType',
      ]) {
        assert.ok(error.message.includes(field), field);
      }
    }
  });
});

describe('credentials', () => {
  const env = (extra: Record<string, string> = {}): NodeJS.ProcessEnv => ({
    HOME: join(work, 'nohome'),
    ...extra,
  });

  it('explicit credentials win, then a registry token, then Docker config, then GITHUB_TOKEN for ghcr.io', async () => {
    const configDir = await mkdtemp(join(work, 'docker-'));
    await writeFile(
      join(configDir, 'config.json'),
      JSON.stringify({
        auths: {
          'https://index.docker.io/v1/': { auth: Buffer.from('hubuser:hubpass').toString('base64') },
          'ghcr.io': {},
        },
      }),
    );
    const base = { env: env({ DOCKER_CONFIG: configDir, GITHUB_TOKEN: 'gh-token' }) };
    assert.deepEqual(await resolveCredentials('docker.io', { ...base, username: 'u', password: 'p' }), {
      credentials: { kind: 'basic', username: 'u', password: 'p' },
      source: 'explicit',
    });
    assert.deepEqual(await resolveCredentials('docker.io', { ...base, registryToken: 't' }), {
      credentials: { kind: 'bearer', token: 't' },
      source: 'registry-token',
    });
    assert.deepEqual(await resolveCredentials('docker.io', base), {
      credentials: { kind: 'basic', username: 'hubuser', password: 'hubpass' },
      source: 'docker-config',
    });
    assert.deepEqual(await resolveCredentials('ghcr.io', base), {
      credentials: { kind: 'basic', username: 'token', password: 'gh-token' },
      source: 'github-token',
    });
    assert.deepEqual(await resolveCredentials('quay.io', base), {
      credentials: undefined,
      source: 'anonymous',
    });
    assert.deepEqual(await resolveCredentials('quay.io', { env: env() }), {
      credentials: undefined,
      source: 'anonymous',
    });
  });

  it('uses credsStore through the helper protocol; "not found" means anonymous; a broken helper is CREDENTIALS without its output', async () => {
    const bin = await mkdtemp(join(work, 'bin-'));
    await writeFile(
      join(bin, 'docker-credential-store'),
      '#!/bin/sh\nread s\ncase "$s" in\n  found.example) echo \'{"Username":"store-user","Secret":"store-secret"}\';;\n  broken.example) echo "SECRET-LEAK"; exit 3;;\n  *) echo "credentials not found in native keychain"; exit 1;;\nesac\n',
    );
    await chmod(join(bin, 'docker-credential-store'), 0o755);
    const configDir = await mkdtemp(join(work, 'docker-'));
    await writeFile(join(configDir, 'config.json'), JSON.stringify({ credsStore: 'store' }));
    const options = { env: env({ DOCKER_CONFIG: configDir, PATH: `${bin}:${process.env.PATH ?? ''}` }) };
    assert.deepEqual(await resolveCredentials('found.example', options), {
      credentials: { kind: 'basic', username: 'store-user', password: 'store-secret' },
      source: 'credential-helper',
    });
    assert.deepEqual(await resolveCredentials('other.example', options), {
      credentials: undefined,
      source: 'anonymous',
    });
    await assert.rejects(resolveCredentials('broken.example', options), (e: unknown) => {
      assert.ok(e instanceof OciError && e.code === 'CREDENTIALS');
      assert.ok(!e.message.includes('SECRET-LEAK'));
      return true;
    });
  });

  it('a config.json that is not JSON is a CREDENTIALS error that does not quote the file', async () => {
    const configDir = await mkdtemp(join(work, 'docker-'));
    await writeFile(join(configDir, 'config.json'), '{"auths": {"x": {"auth": "c2VjcmV0OnB3"}} broken');
    await assert.rejects(
      resolveCredentials('x', { env: env({ DOCKER_CONFIG: configDir }) }),
      (e: unknown) => {
        assert.ok(e instanceof OciError && e.code === 'CREDENTIALS');
        assert.ok(!e.message.includes('c2VjcmV0') && e.cause === undefined);
        return true;
      },
    );
  });
});
