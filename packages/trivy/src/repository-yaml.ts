import { isVexRepositoryName } from '@trivy-airgap/format';
import { YAMLSeq, isMap, isScalar, isSeq, parseDocument, type Document, type YAMLMap } from 'yaml';
import { DEFAULT_VEX_REPOSITORY } from './artifacts.js';
import { TrivyError } from './errors.js';

/** One entry of repository.yaml as Trivy reads it. */
export interface VexRepositoryEntry {
  readonly name: string;
  readonly url: string;
  readonly enabled: boolean;
}

export interface ImportedVexRepository {
  readonly name: string;
  readonly url: string;
}

/** The file Trivy writes when repository.yaml is missing (trivy-facts.md), byte for byte. */
export function defaultRepositoryYaml(): string {
  return [
    'repositories:',
    `  - name: ${DEFAULT_VEX_REPOSITORY.name}`,
    `    url: ${DEFAULT_VEX_REPOSITORY.url}`,
    '    enabled: true',
    '    username: ""',
    '    password: ""',
    '    token: ""',
    '    insecure: false',
    '',
  ].join('\n');
}

/** The yaml library's message without its code frame: one line, "… at line L, column C". */
function firstLine(message: string): string {
  return (message.split('\n', 1)[0] ?? '').replace(/:$/, '');
}

function parseRepositoryDocument(text: string, what: string): Document.Parsed {
  const document = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (document.errors.length > 0) {
    throw new TrivyError(
      'REPOSITORY_YAML_INVALID',
      `${what} is not valid YAML, so it was left untouched: ${firstLine(document.errors[0]?.message ?? '')}`,
      { cause: document.errors[0], hint: `fix or move ${what}, then import again` },
    );
  }
  const contents = document.contents;
  if (contents !== null && !isMap(contents) && !(isScalar(contents) && contents.value === null)) {
    throw new TrivyError(
      'REPOSITORY_YAML_INVALID',
      `${what} is not a YAML mapping with a "repositories" list`,
      {
        hint: `fix or move ${what}, then import again`,
      },
    );
  }
  if (isMap(contents)) {
    const repositories = contents.get('repositories', true);
    if (
      repositories !== undefined &&
      !isSeq(repositories) &&
      !(isScalar(repositories) && repositories.value === null)
    ) {
      throw new TrivyError('REPOSITORY_YAML_INVALID', `${what}: "repositories" is not a list`, {
        hint: `fix or move ${what}, then import again`,
      });
    }
    if (isSeq(repositories)) {
      repositories.items.forEach((item, index) => {
        if (!isMap(item)) {
          throw new TrivyError(
            'REPOSITORY_YAML_INVALID',
            `${what}: repositories[${index}] is not a mapping`,
            {
              hint: `fix or move ${what}, then import again`,
            },
          );
        }
      });
    }
  }
  return document;
}

function stringField(map: YAMLMap, key: string): string | undefined {
  const value: unknown = map.get(key);
  return typeof value === 'string' ? value : undefined;
}

/** The repositories listed in repository.yaml text, in order (priority). */
export function readRepositoryYaml(text: string, what = 'repository.yaml'): VexRepositoryEntry[] {
  const document = parseRepositoryDocument(text, what);
  const contents = document.contents;
  if (!isMap(contents)) return [];
  const repositories = contents.get('repositories', true);
  if (!isSeq(repositories)) return [];
  return repositories.items.filter(isMap).map((item) => ({
    name: stringField(item, 'name') ?? '',
    url: stringField(item, 'url') ?? '',
    enabled: item.get('enabled') === true,
  }));
}

/**
 * repository.yaml after an import. A missing file is created with the imported repositories only:
 * Trivy's own default (VEX Hub) entry is written only when the bundle carried VEX Hub, because an
 * enabled entry without content makes every offline scan warn about it. An existing file keeps its
 * other repositories, their order, settings and comments; an imported repository that is not
 * listed is appended, enabled. A listed one keeps its URL and credentials (the name is what ties it
 * to `vex/repositories/<name>/`) and is enabled unless the user wrote `enabled: false`: that choice
 * is theirs, and `status` reports the repository as cached but disabled.
 * Throws REPOSITORY_YAML_INVALID instead of clobbering a file it cannot read.
 */
export function mergeRepositoryYaml(
  existingText: string | undefined,
  imported: readonly ImportedVexRepository[],
  what = 'repository.yaml',
): string {
  for (const repository of imported) {
    if (!isVexRepositoryName(repository.name)) {
      throw new TrivyError(
        'REPOSITORY_INVALID',
        `VEX repository name ${JSON.stringify(repository.name)} is not a plain local name`,
      );
    }
  }
  const document = parseRepositoryDocument(existingText ?? 'repositories: []\n', what);
  if (!isMap(document.contents)) {
    document.contents = document.createNode({}) as unknown as typeof document.contents;
  }
  const root = document.contents as unknown as YAMLMap;
  const found: unknown = root.get('repositories', true);
  let repositories: YAMLSeq;
  if (isSeq(found)) {
    repositories = found;
  } else {
    repositories = new YAMLSeq(document.schema);
    root.set('repositories', repositories);
  }
  let changed = existingText === undefined;
  for (const repository of imported) {
    const existing = repositories.items.find(
      (item): item is YAMLMap => isMap(item) && item.get('name') === repository.name,
    );
    if (existing === undefined) {
      // `repositories: []` would otherwise grow into one long flow-style line.
      repositories.flow = false;
      repositories.add(
        document.createNode({
          name: repository.name,
          url: repository.url,
          enabled: true,
          username: '',
          password: '',
          token: '',
          insecure: false,
        }),
      );
      changed = true;
    } else if (existing.get('enabled') !== true && existing.get('enabled') !== false) {
      existing.set('enabled', true);
      changed = true;
    }
  }
  if (!changed && existingText !== undefined) return existingText;
  return document.toString({ lineWidth: 0 });
}
