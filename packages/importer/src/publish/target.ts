import type { OciComponent, OciComponentKind } from '@trivy-airgap/format';
import { parseReference, type ImageReference } from '@trivy-airgap/oci';
import { ARTIFACTS, ARTIFACT_KINDS, trivyCapabilities } from '@trivy-airgap/trivy';
import { PublishError } from './errors.js';

/** Where `--to-registry HOST[:PORT][/PREFIX]` points: the registry and a repository prefix. */
export interface RegistryTarget {
  /** `registry.example.com`, `127.0.0.1:5000`, `localhost:5000`. */
  readonly registry: string;
  /** Repository path prefix without slashes at the ends ('' for none), e.g. `mirror/aquasec`. */
  readonly prefix: string;
}

const HINT = 'give HOST[:PORT][/PREFIX], e.g. registry.example.com/trivy or 127.0.0.1:5000';

function invalid(value: string, why: string, hint = HINT): PublishError {
  return new PublishError('TARGET_INVALID', `--to-registry ${JSON.stringify(value)}: ${why}`, {
    hint,
    subject: value,
  });
}

/**
 * Parses `HOST[:PORT][/PREFIX]`. The host must be one Docker (and so Trivy) reads as a registry:
 * it has a `.` or a `:port`, or is `localhost`; otherwise `host/trivy-db:2` would mean Docker Hub.
 */
export function parseRegistryTarget(value: string): RegistryTarget {
  const text = value.trim().replace(/\/+$/, '');
  if (text === '') throw invalid(value, 'is empty');
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) {
    throw invalid(
      value,
      'has a URL scheme',
      'give HOST[:PORT][/PREFIX] without http(s)://; a plain-HTTP registry needs --plain-http',
    );
  }
  if (/[@\s]/.test(text)) throw invalid(value, 'may not contain "@" or spaces (no tag, no digest)');
  const slash = text.indexOf('/');
  const host = slash < 0 ? text : text.slice(0, slash);
  const prefix = slash < 0 ? '' : text.slice(slash + 1);
  if (!host.includes('.') && !host.includes(':') && host.toLowerCase() !== 'localhost') {
    throw invalid(
      value,
      `${JSON.stringify(host)} would be read as a Docker Hub namespace, not a registry host`,
      'use the registry’s full host name or add its port (registry:5000)',
    );
  }
  // The tags are ours to add: a `:` after the host would be read as one.
  if (prefix.includes(':')) throw invalid(value, 'the prefix may not carry a tag');
  let parsed: ImageReference;
  try {
    parsed = parseReference(`${host}/${prefix === '' ? '' : `${prefix}/`}${ARTIFACTS.db.repositoryName}`);
  } catch (cause) {
    throw invalid(value, cause instanceof Error ? cause.message : String(cause));
  }
  return {
    registry: parsed.registry,
    prefix: parsed.repository.slice(0, -ARTIFACTS.db.repositoryName.length).replace(/\/$/, ''),
  };
}

/** `HOST/PREFIX/trivy-db:2` etc.: the component's upstream repository name and tag under the target. */
export function targetReference(target: RegistryTarget, component: OciComponent): ImageReference {
  // Upstream's repository name, so Trivy's own tag rules (`:2`, `:1`, `:latest` for a tagless
  // checks repository) keep meaning the same thing on the site registry.
  const name = ARTIFACTS[component.kind].repositoryName;
  return {
    registry: target.registry,
    repository: target.prefix === '' ? name : `${target.prefix}/${name}`,
    tag: component.tag,
  };
}

export function formatTarget(target: RegistryTarget): string {
  return target.prefix === '' ? target.registry : `${target.registry}/${target.prefix}`;
}

/** The Trivy settings that make clients pull from the site registry. */
export interface TrivyRegistrySettings {
  /** e.g. `['--db-repository', 'reg/trivy-db:2', '--java-db-repository', …]` */
  readonly flags: readonly string[];
  /** The same as trivy.yaml (db.repository, db.java-repository, misconfiguration.checks-bundle-repository). */
  readonly trivyYaml: string;
  /** Reference per kind, for the components that were pushed. */
  readonly repositories: Readonly<Partial<Record<OciComponentKind, string>>>;
  /** Things clients may need beyond the flags (TLS trust, credentials). */
  readonly notes: readonly string[];
}

export interface ClientAccess {
  readonly plainHttp?: boolean | undefined;
  readonly insecure?: boolean | undefined;
  readonly caCert?: boolean | undefined;
  readonly authenticated?: boolean | undefined;
  /** The Trivy the settings are for (release or the bundle's `trivyVersions`): flag names changed. */
  readonly trivyVersion?: string | undefined;
}

/**
 * The flags and trivy.yaml for clients of the site registry. They do not need the skip flags:
 * Trivy downloads from the registry as it would from upstream. Values are single strings (not
 * lists) so that Trivy releases whose db.repository is a plain string read them too.
 */
export function trivyRegistrySettings(
  refs: Readonly<Partial<Record<OciComponentKind, string>>>,
  access: ClientAccess = {},
): TrivyRegistrySettings {
  const kinds = ARTIFACT_KINDS.filter((kind) => refs[kind] !== undefined);
  const can = trivyCapabilities(access.trivyVersion);
  const flags: string[] = [];
  for (const kind of kinds) flags.push(can.repositoryFlags[kind], refs[kind] ?? '');
  const notes: string[] = [];
  if (access.plainHttp === true) {
    flags.push('--insecure');
    notes.push('the registry speaks plain HTTP: Trivy needs --insecure (insecure: true) to use it');
  } else if (access.insecure === true) {
    notes.push(
      'the registry certificate was not verified (--insecure): clients need it trusted, or --insecure',
    );
  } else if (access.caCert === true) {
    notes.push('the registry uses a private CA: install it on clients (system trust store or --cacert)');
  }
  if (access.authenticated === true) {
    notes.push(
      'if the repositories are not public, clients need pull credentials (TRIVY_USERNAME/TRIVY_PASSWORD or docker login)',
    );
  }
  const lines = ['# Written by trivy-airgap: pull Trivy content from the site registry.'];
  // The table's trivy.yaml keys (`db.repository`, …), grouped under their sections in kind order.
  const sections = new Map<string, string[]>();
  for (const kind of kinds) {
    const [section = '', key = ''] = can.repositoryKeys[kind].split('.');
    const entries = sections.get(section) ?? [];
    entries.push(`  ${key}: ${refs[kind] ?? ''}`);
    sections.set(section, entries);
  }
  for (const [section, entries] of sections) lines.push(`${section}:`, ...entries);
  if (access.plainHttp === true) lines.push('insecure: true');
  return { flags, trivyYaml: `${lines.join('\n')}\n`, repositories: { ...refs }, notes };
}
