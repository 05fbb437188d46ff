import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { mergeRepositoryYaml, readRepositoryYaml } from '../src/index.js';
import { defaultRepositoryYaml } from '../src/repository-yaml.js';
import { throwsCode } from './helpers.js';

const VEXHUB = { name: 'default', url: 'https://github.com/aquasecurity/vexhub' };

describe('repository.yaml (trivy-facts: "VEX repositories (VEX Hub)")', () => {
  it("creates Trivy's default shape when the file is missing", () => {
    const text = mergeRepositoryYaml(undefined, [VEXHUB]);
    assert.equal(text, defaultRepositoryYaml());
    assert.deepEqual(parse(text), {
      repositories: [
        {
          name: 'default',
          url: 'https://github.com/aquasecurity/vexhub',
          enabled: true,
          username: '',
          password: '',
          token: '',
          insecure: false,
        },
      ],
    });
  });

  it('a missing file and a bundle without VEX Hub: only the imported repository, no enabled default entry without content', () => {
    const text = mergeRepositoryYaml(undefined, [{ name: 'internal', url: 'https://vex.internal.example' }]);
    assert.deepEqual(
      readRepositoryYaml(text).map((entry) => [entry.name, entry.enabled]),
      [['internal', true]],
    );
  });

  const userFile = `# Managed by the platform team
repositories:
  # our own advisories come first
  - name: corp
    url: https://vex.corp.example/repo
    enabled: true
    username: ""
    password: ""
    token: "s3cret" # rotated monthly
    insecure: false
  - name: default
    url: https://github.com/aquasecurity/vexhub
    enabled: false
    username: ""
    password: ""
    token: ""
    insecure: false
  - name: lab
    url: http://vex.lab.example
    enabled: false
    insecure: true
`;

  it("keeps a user's two custom repositories, their order, settings and comments, and never flips their enabled: false", () => {
    const text = mergeRepositoryYaml(userFile, [VEXHUB, { name: 'lab', url: 'http://vex.lab.example' }]);
    const entries = readRepositoryYaml(text);
    assert.deepEqual(
      entries.map((entry) => [entry.name, entry.enabled]),
      [
        ['corp', true],
        ['default', false],
        ['lab', false],
      ],
    );
    const parsed = parse(text) as { repositories: Record<string, unknown>[] };
    const [corp, , lab] = parsed.repositories;
    assert.equal(corp!.token, 's3cret');
    assert.equal(lab!.insecure, true);
    assert.equal(lab!.url, 'http://vex.lab.example');
    assert.ok(text.includes('# Managed by the platform team'));
    assert.ok(text.includes('# our own advisories come first'));
    assert.ok(text.includes('# rotated monthly'));
    // The user disabled default and lab on purpose: the file is left exactly as it was.
    assert.equal(text, userFile);
  });

  it('enables a listed imported repository that has no enabled setting (Trivy reads that as disabled)', () => {
    const text = mergeRepositoryYaml(
      'repositories:\n  - name: default\n    url: https://github.com/aquasecurity/vexhub\n',
      [VEXHUB],
    );
    assert.deepEqual(
      readRepositoryYaml(text).map((entry) => [entry.name, entry.enabled]),
      [['default', true]],
    );
  });

  it('appends a repository that is not listed yet, after the user entries', () => {
    const text = mergeRepositoryYaml(userFile, [{ name: 'mirror', url: 'https://vex.mirror.example' }]);
    const parsed = parse(text) as { repositories: Record<string, unknown>[] };
    assert.deepEqual(
      parsed.repositories.map((entry) => entry.name),
      ['corp', 'default', 'lab', 'mirror'],
    );
    assert.deepEqual(parsed.repositories[3], {
      name: 'mirror',
      url: 'https://vex.mirror.example',
      enabled: true,
      username: '',
      password: '',
      token: '',
      insecure: false,
    });
  });

  it("an existing entry keeps the user's URL and credentials (the name ties it to the cache dir)", () => {
    const text = mergeRepositoryYaml(userFile, [{ name: 'corp', url: 'https://other.example' }]);
    assert.equal(text, userFile);
  });

  it('returns the text unchanged when nothing needs to change', () => {
    const text = mergeRepositoryYaml(userFile, [{ name: 'corp', url: 'https://vex.corp.example/repo' }]);
    assert.equal(text, userFile);
  });

  it('`repositories: []` becomes a block list like the one Trivy writes', () => {
    const text = mergeRepositoryYaml('repositories: []\n', [VEXHUB]);
    assert.equal(text, defaultRepositoryYaml());
  });

  it('an empty file gets a repositories list with the imported entry', () => {
    const text = mergeRepositoryYaml('', [VEXHUB]);
    assert.deepEqual(
      readRepositoryYaml(text).map((entry) => entry.name),
      ['default'],
    );
  });

  for (const [what, text] of [
    ['invalid YAML', 'repositories:\n  - name: a\n   url: [broken\n'],
    ['a list at the top', '- name: a\n'],
    ['repositories that is not a list', 'repositories: yes\n'],
    ['an entry that is not a mapping', 'repositories:\n  - just-a-string\n'],
    ['duplicate keys', 'repositories: []\nrepositories: []\n'],
  ] as const) {
    it(`refuses ${what} with REPOSITORY_YAML_INVALID instead of clobbering it`, () => {
      throwsCode(() => mergeRepositoryYaml(text, [VEXHUB]), 'REPOSITORY_YAML_INVALID');
    });
  }

  it('refuses a repository name that is not a plain local name (it becomes vex/repositories/<name>/)', () => {
    throwsCode(
      () => mergeRepositoryYaml(undefined, [{ name: '../x', url: 'https://x' }]),
      'REPOSITORY_INVALID',
    );
  });
});
