import {
  COMPONENT_KINDS as KINDS,
  OCI_COMPONENT_KINDS,
  type ComponentKind,
  type OciComponentKind,
} from '@trivy-airgap/format';
import type { ByRelease } from './versions.js';

/**
 * THE component table: every fact about Trivy's offline content that export, import, rollback,
 * publish, status, the doctor and the printed commands need, per component kind and, where it
 * changed, per Trivy release (trivy-facts.md). Code elsewhere reads these rows; it never spells a
 * cache path, media type, tag, flag or schema of its own. Adding a kind is a row here plus its
 * fetch and install specifics (exporter/importer `componentSteps`).
 */

/** What makes Trivy use an installed component as is, offline. */
export interface OfflineSetting {
  /** Command-line arguments, e.g. `['--skip-db-update']`. */
  readonly flags: readonly string[];
  /** The same as trivy.yaml settings: dotted key → value (`db.skip-update: true`). */
  readonly config: Readonly<Record<string, unknown>>;
  /**
   * `update`: a flag that stops a download before the scan (printed before `--offline-scan`);
   * `scan`: a scan option (printed after it), like `--vex repo`.
   */
  readonly group: 'update' | 'scan';
}

/** The Trivy option that names an artifact's repository, on the command line and in trivy.yaml. */
export interface RepositoryOption {
  readonly flag: string;
  readonly key: string;
}

/**
 * What the doctor replays for a database (trivy-facts.md, "metadata.json"): what the skip flag
 * checks, what a schema mismatch does, when Trivy would download again without the flag.
 */
export interface DatabaseStatusRule {
  /** With the skip flag Trivy needs the database file too (db), or only metadata.json (java-db). */
  readonly skipNeedsDatabaseFile: boolean;
  /** Not installed: no scan runs offline (`fail`), or only some scans fail (`warning`). */
  readonly missing: 'fail' | 'warning';
  /** What a missing copy means to the user, in Trivy's words where it has them. */
  readonly missingEffect: string;
  /** A Version other than the schema: Trivy refuses it (`fail`) or reads it anyway (`warning`). */
  readonly schemaMismatch: 'fail' | 'warning';
  /**
   * Without the skip flag Trivy downloads again once `now > NextUpdate` and
   * `now > DownloadedAt + graceMs`; a zero DownloadedAt reads as corrupted (db). Undefined: not
   * replayed for this kind.
   */
  readonly refresh?: { readonly graceMs: number };
}

/**
 * How much one layer of a kind may unpack to (docs/security.md, "Limits"): what upstream ships,
 * with a wide margin. Refused as soon as a tar header claims more, before its body is read. Every
 * installed generation is kept for `rollback`, so these bound the disk and inode cost of an
 * import too.
 */
export interface UnpackLimits {
  readonly maxEntries: number;
  readonly maxBytes: number;
  /**
   * Layers of many small files (checks) are checked in memory and written only once every check
   * passed, so a hostile one costs no disk writes at all (creating a file costs ~0.3-0.6 ms on a
   * plain ext4 VM: 20 000 of them take seconds). Such layers must be small compressed; this is
   * their cap (from the manifest's size, before a byte is read). Undefined: written while read.
   */
  readonly checkBeforeWriting?: { readonly maxCompressedBytes: number };
}

/** What every kind has. */
interface CommonFacts {
  /** In the user's words, as help and status name it. */
  readonly label: string;
  /**
   * The directory Trivy reads under its cache dir (POSIX); for an artifact, the one Trivy wipes and
   * refills. For a per-repository kind (vex), the
   * parent of one directory per repository name.
   */
  readonly cachePath: string;
  /** One installed copy per repository name (vex), instead of one per cache. */
  readonly perRepository: boolean;
  /** How Trivy uses it offline, per release; null: that release cannot use it at all. */
  readonly offline: ByRelease<OfflineSetting | null>;
}

/** One of the three OCI artifacts (trivy-facts.md, "The three OCI artifacts"). */
export interface ArtifactFacts extends CommonFacts {
  readonly kind: OciComponentKind;
  readonly perRepository: false;
  /** The exact layer mediaType Trivy requires. */
  readonly layerMediaType: string;
  /** The `org.opencontainers.image.title` of the layer as published. */
  readonly title: string;
  /** Where the layer is unpacked inside `cachePath` ('' = its root; checks: `content`). */
  readonly layerPath: string;
  /** The metadata file Trivy reads next to the content, inside `cachePath`. */
  readonly metadataFile: string;
  /** Which metadata it is: DB metadata (published in the layer) or policy metadata (written by us). */
  readonly metadataFormat: 'db' | 'policy';
  /** Name of the database file at the root of the layer (absent for checks). */
  readonly databaseFile?: string;
  /** DB schema (db 2, java-db 1) or bundle major version (checks 2). */
  readonly schemaVersion: number;
  /** The tag Trivy appends to a tagless repository (`:latest` for checks!). */
  readonly taglessTag: string;
  /**
   * Trivy ≤ 0.50 appended the schema tag only when the repository had no `:` at all, so
   * `host:5000/trivy-db` meant `:latest` (the DBs only).
   */
  readonly legacyTagRuleBefore?: number;
  /** Our CLI flag for its repositories (Trivy's name in current releases). */
  readonly repositoryFlag: string;
  /** Trivy takes several repositories in fallback order (the DBs), or exactly one (checks). */
  readonly repositoryList: boolean;
  /** What one layer may unpack to. */
  readonly unpackLimits: UnpackLimits;
  /** Trivy's repository option, per release. */
  readonly repositoryOption: ByRelease<RepositoryOption>;
  /** Upstream's repository name: what `--to-registry` pushes to, so Trivy's tag rules still apply. */
  readonly repositoryName: string;
  /** Trivy's default repositories in fallback order, per release. */
  readonly repositories: ByRelease<readonly string[]>;
  /**
   * Where the same builds are also published, as a rewrite of a default repository's prefix
   * (`export --verify-mirrors` confirms the layer digest there too; the DB defaults already list
   * both registries).
   */
  readonly alsoPublishedAt: readonly { readonly prefix: string; readonly replacement: string }[];
  /** The doctor's rules (DBs). */
  readonly status?: DatabaseStatusRule;
}

/** A VEX repository as Trivy caches it (trivy-facts.md, "VEX repositories"). */
export interface VexFacts extends CommonFacts {
  readonly kind: 'vex';
  readonly perRepository: true;
  /** Files of `<cachePath>/<name>/`. */
  readonly files: {
    readonly manifest: string;
    readonly cacheJson: string;
    /** The unpacked repository for spec version 0.1. */
    readonly content: string;
    /** The repository's index, at the root of the repository (and so of `content`). */
    readonly indexFile: string;
    /** `content/indexFile`. */
    readonly index: string;
  };
  /** Trivy's default repositories, per release (none before 0.54: `--vex` took only files). */
  readonly repositories: ByRelease<readonly { readonly name: string; readonly url: string }[]>;
}

export type ComponentFacts = ArtifactFacts | VexFacts;

const HOUR = 3_600_000;
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/** The vex-repo-spec version Trivy reads; also the directory name of the unpacked repository. */
export const VEX_SPEC_VERSION = '0.1';

/** Trivy's `--skip-check-update` appeared in 0.51; before, the checks were "policies". */
const CHECKS_RENAMED = 51;
/** `--vex repo` and `--skip-vex-repo-update` appeared in 0.54. */
const VEX_REPOSITORIES = 54;
/** mirror.gcr.io became the first DB repository in 0.58. */
const MIRRORS = 58;

/** VEX Hub, Trivy's default VEX repository (the entry Trivy writes into a new repository.yaml). */
export const DEFAULT_VEX_REPOSITORY = {
  name: 'default',
  url: 'https://github.com/aquasecurity/vexhub',
} as const;

function dbRepositories(name: string, tag: string): ByRelease<readonly string[]> {
  return [
    { from: MIRRORS, value: [`mirror.gcr.io/aquasec/${name}:${tag}`, `ghcr.io/aquasecurity/${name}:${tag}`] },
    { from: 0, value: [`ghcr.io/aquasecurity/${name}:${tag}`] },
  ];
}

function skip(flag: string, key: string): ByRelease<OfflineSetting | null> {
  return [{ from: 0, value: { flags: [flag], config: { [key]: true }, group: 'update' } }];
}

export const COMPONENTS: { readonly [K in OciComponentKind]: ArtifactFacts & { readonly kind: K } } & {
  readonly vex: VexFacts;
} = {
  db: {
    kind: 'db',
    label: 'vulnerability DB',
    perRepository: false,
    layerMediaType: 'application/vnd.aquasec.trivy.db.layer.v1.tar+gzip',
    title: 'db.tar.gz',
    cachePath: 'db',
    layerPath: '',
    metadataFile: 'metadata.json',
    metadataFormat: 'db',
    databaseFile: 'trivy.db',
    schemaVersion: 2,
    taglessTag: '2',
    legacyTagRuleBefore: CHECKS_RENAMED,
    repositoryFlag: '--db-repository',
    repositoryList: true,
    // trivy.db + metadata.json; trivy.db is several hundred MB unpacked.
    unpackLimits: { maxEntries: 16, maxBytes: 8 * GiB },
    repositoryOption: [{ from: 0, value: { flag: '--db-repository', key: 'db.repository' } }],
    repositoryName: 'trivy-db',
    repositories: dbRepositories('trivy-db', '2'),
    alsoPublishedAt: [],
    offline: skip('--skip-db-update', 'db.skip-update'),
    status: {
      skipNeedsDatabaseFile: true,
      missing: 'fail',
      missingEffect: '"--skip-db-update cannot be specified on the first run"',
      schemaMismatch: 'fail',
      refresh: { graceMs: HOUR },
    },
  },
  'java-db': {
    kind: 'java-db',
    label: 'Java DB',
    perRepository: false,
    layerMediaType: 'application/vnd.aquasec.trivy.javadb.layer.v1.tar+gzip',
    title: 'javadb.tar.gz',
    cachePath: 'java-db',
    layerPath: '',
    metadataFile: 'metadata.json',
    metadataFormat: 'db',
    databaseFile: 'trivy-java.db',
    schemaVersion: 1,
    taglessTag: '1',
    legacyTagRuleBefore: CHECKS_RENAMED,
    repositoryFlag: '--java-db-repository',
    repositoryList: true,
    // trivy-java.db + metadata.json; ~0.5 GB compressed, a few GB unpacked.
    unpackLimits: { maxEntries: 16, maxBytes: 16 * GiB },
    repositoryOption: [{ from: 0, value: { flag: '--java-db-repository', key: 'db.java-repository' } }],
    repositoryName: 'trivy-java-db',
    repositories: dbRepositories('trivy-java-db', '1'),
    alsoPublishedAt: [],
    offline: skip('--skip-java-db-update', 'db.java-skip-update'),
    status: {
      skipNeedsDatabaseFile: false,
      missing: 'warning',
      missingEffect: 'scans that meet JAR files fail offline',
      schemaMismatch: 'warning',
    },
  },
  checks: {
    kind: 'checks',
    label: 'checks bundle',
    perRepository: false,
    layerMediaType: 'application/vnd.cncf.openpolicyagent.layer.v1.tar+gzip',
    title: 'bundle.tar.gz',
    cachePath: 'policy',
    layerPath: 'content',
    metadataFile: 'metadata.json',
    metadataFormat: 'policy',
    schemaVersion: 2,
    taglessTag: 'latest',
    repositoryFlag: '--checks-bundle-repository',
    repositoryList: false,
    // trivy-checks v2 is ~200 KiB compressed, on the order of a thousand files (rego checks,
    // libraries, compliance specs, commands); 20 000 leaves >10x room for growth and still refuses
    // an inode flood (a 3 MB bundle of 120 000 tiny files was accepted before these limits).
    unpackLimits: {
      maxEntries: 20_000,
      maxBytes: 256 * MiB,
      // ~200 KiB upstream (2025); a layer this large is not a checks bundle.
      checkBeforeWriting: { maxCompressedBytes: 64 * MiB },
    },
    repositoryOption: [
      {
        from: CHECKS_RENAMED,
        value: { flag: '--checks-bundle-repository', key: 'misconfiguration.checks-bundle-repository' },
      },
      {
        from: 0,
        value: { flag: '--policy-bundle-repository', key: 'misconfiguration.policy-bundle-repository' },
      },
    ],
    repositoryName: 'trivy-checks',
    // trivy-facts.md: checks tag history (and trivy-policies before 0.51).
    repositories: [
      { from: 69, value: ['mirror.gcr.io/aquasec/trivy-checks:2'] },
      { from: MIRRORS, value: ['mirror.gcr.io/aquasec/trivy-checks:1'] },
      { from: 56, value: ['ghcr.io/aquasecurity/trivy-checks:1'] },
      { from: CHECKS_RENAMED, value: ['ghcr.io/aquasecurity/trivy-checks:0'] },
      { from: 0, value: ['ghcr.io/aquasecurity/trivy-policies:0'] },
    ],
    alsoPublishedAt: [{ prefix: 'mirror.gcr.io/aquasec/', replacement: 'ghcr.io/aquasecurity/' }],
    offline: [
      {
        from: CHECKS_RENAMED,
        value: {
          flags: ['--skip-check-update'],
          config: { 'rego.skip-check-update': true },
          group: 'update',
        },
      },
      {
        from: 0,
        value: {
          flags: ['--skip-policy-update'],
          config: { 'rego.skip-policy-update': true },
          group: 'update',
        },
      },
    ],
  },
  vex: {
    kind: 'vex',
    label: 'VEX repository',
    perRepository: true,
    cachePath: 'vex/repositories',
    files: {
      manifest: 'vex-repository.json',
      cacheJson: 'cache.json',
      content: VEX_SPEC_VERSION,
      indexFile: 'index.json',
      index: `${VEX_SPEC_VERSION}/index.json`,
    },
    repositories: [
      { from: VEX_REPOSITORIES, value: [DEFAULT_VEX_REPOSITORY] },
      { from: 0, value: [] },
    ],
    offline: [
      {
        from: VEX_REPOSITORIES,
        value: {
          flags: ['--vex', 'repo', '--skip-vex-repo-update'],
          config: { 'vulnerability.vex': ['repo'], 'vulnerability.skip-vex-repo-update': true },
          group: 'scan',
        },
      },
      // Before 0.54 `--vex` takes only a file path: VEX repositories are useless to those releases.
      { from: 0, value: null },
    ],
  },
};

/** Every kind, in table order (the order of bundles, status and printed flags). */
export const COMPONENT_KINDS: readonly ComponentKind[] = KINDS;

/** The OCI artifacts Trivy downloads. */
export type ArtifactKind = OciComponentKind;
export const ARTIFACT_KINDS: readonly ArtifactKind[] = OCI_COMPONENT_KINDS;

/** The OCI rows of the table. */
export const ARTIFACTS: Readonly<Record<ArtifactKind, ArtifactFacts>> = COMPONENTS;

/**
 * A value per kind: `artifact(kind)` for every OCI artifact, `vex` for VEX repositories — for the
 * per-kind steps, so that a kind fetched and installed like the artifacts before it needs no entry
 * of its own.
 */
export function perKind<A, V>(
  artifact: (kind: ArtifactKind) => A,
  vex: V,
): { readonly [K in ComponentKind]: K extends 'vex' ? V : A } {
  const entries: [ComponentKind, A | V][] = ARTIFACT_KINDS.map((kind) => [kind, artifact(kind)]);
  entries.push(['vex', vex]);
  return Object.fromEntries(entries) as { readonly [K in ComponentKind]: K extends 'vex' ? V : A };
}

/** Settings every offline scan needs, whatever is installed, per release (trivy-facts.md). */
export const SCAN_SETTINGS = {
  /** Never reach out for anything a scan would otherwise fetch. */
  offlineScan: { flags: ['--offline-scan'], config: { 'scan.offline': true } },
  /** `--skip-version-check` and `--disable-telemetry` (phone-home calls) exist from 0.63. */
  phoneHome: [
    {
      from: 63,
      value: {
        flags: ['--skip-version-check', '--disable-telemetry'],
        config: { 'scan.skip-version-check': true, 'scan.disable-telemetry': true },
      },
    },
    { from: 0, value: null },
  ] as ByRelease<{
    readonly flags: readonly string[];
    readonly config: Readonly<Record<string, unknown>>;
  } | null>,
  /** trivy.yaml key of `--cache-dir`. */
  cacheDirKey: 'cache.dir',
} as const;

/**
 * What Trivy reads of an artifact, relative to the cache dir (POSIX): its content (the database
 * file, or the checks directory) and its metadata file.
 */
export function artifactCachePaths(kind: ArtifactKind): {
  readonly content: string;
  readonly metadata: string;
} {
  const facts = ARTIFACTS[kind];
  const content = facts.databaseFile ?? facts.layerPath;
  return { content: `${facts.cachePath}/${content}`, metadata: `${facts.cachePath}/${facts.metadataFile}` };
}

/**
 * Where Trivy reads a component, relative to the cache dir (POSIX): `db`, `policy`,
 * `vex/repositories/<name>`. `name` is needed (and must already be validated) for VEX.
 */
export function componentCachePath(kind: ComponentKind, name?: string): string {
  const facts = COMPONENTS[kind];
  if (!facts.perRepository) return facts.cachePath;
  if (name === undefined || name === '') throw new Error(`internal: a ${kind} component needs its name`);
  return `${facts.cachePath}/${name}`;
}
