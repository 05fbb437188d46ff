import { randomBytes } from 'node:crypto';
import { lstat, readFile, mkdir, readdir, readlink, rm, rmdir, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { acquireLock, swapSymlink, syncTree, type HeldLock } from '@trivy-airgap/durable';
import { resolveInside, type ProgressListener, type VexComponent } from '@trivy-airgap/format';
import {
  VEX_SPEC_VERSION,
  WELL_KNOWN_VEX_MANIFEST,
  checkVexArchive,
  parseLocationUrl,
  parseVexRepositoryManifest,
} from '@trivy-airgap/trivy';
import { downgradeReason } from '../policy.js';
import { PublishError } from './errors.js';

/**
 * A VEX "serve dir": what any static web server needs to stand in for VEX Hub (vex-repo-spec 0.1,
 * as Trivy reads it). Layout, always one sub-path per repository (also when there is only one,
 * so adding a second repository later never moves the first one's URL):
 *
 *   DIR/<name>/.well-known/vex-repository.json   locations → URL/<name>/archive.<type>[//<subdir>]
 *   DIR/<name>/archive.tar.gz | archive.zip        the archive bytes exactly as in the bundle
 *   DIR/repository.yaml                            the entries clients put into their repository.yaml
 *
 * Clients configure `url: URL/<name>`; Trivy fetches `URL/<name>/.well-known/vex-repository.json`,
 * then the location, unpacks it and keeps only `<subdir>` (the `//subdir` Trivy's own self-hosting
 * example leaves out, which would leave index.json one level too deep).
 *
 * DIR itself is a symbolic link to a generation directory beside it (`.<DIR>.gen-…`). A new
 * tree is built as a new generation and published by renaming a new link over DIR: one atomic
 * step, so a web server serving DIR sees the old tree or the new one, never half of one. The
 * previous generation is kept (requests in flight may still read it); older ones and leftovers
 * of interrupted runs are removed. One run per DIR at a time.
 */

/** Archive URLs are stable (`archive.tar.gz`): Trivy never re-reads a cached manifest, only the location's ETag. */
export function servedArchiveName(component: VexComponent): string {
  return `archive.${component.archiveType}`;
}

export interface ServedVexRepository {
  readonly name: string;
  /** What clients put as `url` in repository.yaml: `URL/<name>`. */
  readonly url: string;
  readonly manifestUrl: string;
  /** The location URL written into the served manifest, `//subdir` included. */
  readonly location: string;
  /** Paths relative to DIR. */
  readonly files: readonly string[];
}

export interface VexServeDirResult {
  readonly dir: string;
  /** The generation directory DIR now points to. */
  readonly generation: string;
  readonly baseUrl: string;
  readonly repositories: readonly ServedVexRepository[];
  /** The repository.yaml clients need (also written to DIR/repository.yaml). */
  readonly repositoryYaml: string;
  /** Old generations and leftovers removed. */
  readonly cleaned: readonly string[];
}

/**
 * Validates `--vex-base-url`: http(s), no query, fragment or credentials, not github.com (Trivy
 * would use the GitHub contents API there instead of `.well-known`). Returns it without a
 * trailing slash.
 */
export function parseVexBaseUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch (cause) {
    throw new PublishError('BASE_URL_INVALID', `--vex-base-url ${JSON.stringify(value)} is not a URL`, {
      cause,
      hint: 'give the URL the web server serves --vex-serve-dir at, e.g. https://vex.internal.example/vex',
    });
  }
  const problem =
    url.protocol !== 'https:' && url.protocol !== 'http:'
      ? 'must be http:// or https://'
      : url.search !== '' || url.hash !== ''
        ? 'may not have a query or fragment'
        : url.username !== '' || url.password !== ''
          ? 'may not carry credentials (Trivy takes them from repository.yaml)'
          : url.hostname.toLowerCase() === 'github.com'
            ? 'may not be on github.com (Trivy reads GitHub repositories through its API, not .well-known)'
            : url.pathname.includes('//')
              ? 'may not hold "//" in its path (in a VEX location it starts the archive subdir)'
              : undefined;
  if (problem !== undefined) {
    throw new PublishError('BASE_URL_INVALID', `--vex-base-url ${JSON.stringify(value)} ${problem}`, {
      hint: 'give the URL the web server serves --vex-serve-dir at, e.g. https://vex.internal.example/vex',
    });
  }
  return url.toString().replace(/\/+$/, '');
}

/** `URL/<name>/archive.<type>` plus `//<subdir>` when the archive has a top folder. */
export function servedLocation(baseUrl: string, component: VexComponent): string {
  const archive = `${baseUrl}/${component.name}/${servedArchiveName(component)}`;
  return component.subdir === '' ? archive : `${archive}//${component.subdir}`;
}

/**
 * The served vex-repository.json: the bundle's manifest with the 0.1 entry's locations replaced
 * by the served archive (other spec versions point at the internet and are dropped).
 */
export function servedRepositoryManifest(original: Buffer, location: string): Buffer {
  const raw = JSON.parse(original.toString('utf8')) as Record<string, unknown>;
  const versions = Array.isArray(raw.versions) ? (raw.versions as unknown[]) : [];
  const kept = versions
    .filter(
      (entry): entry is Record<string, unknown> =>
        typeof entry === 'object' &&
        entry !== null &&
        (entry as Record<string, unknown>).spec_version === VEX_SPEC_VERSION,
    )
    .slice(0, 1)
    .map((entry) => ({ ...entry, locations: [{ url: location }] }));
  return Buffer.from(`${JSON.stringify({ ...raw, versions: kept }, null, 2)}\n`);
}

/** repository.yaml entries for clients (Trivy's field names; list order is priority). */
export function clientRepositoryYaml(repositories: readonly { name: string; url: string }[]): string {
  const lines = ['# Written by trivy-airgap: VEX repositories served inside the air gap.', 'repositories:'];
  for (const repository of repositories) {
    lines.push(
      `  - name: ${JSON.stringify(repository.name)}`,
      `    url: ${JSON.stringify(repository.url)}`,
      '    enabled: true',
    );
  }
  return `${lines.join('\n')}\n`;
}

const GENERATION = 'gen-';
const LINK = 'link-';

function stamp(): string {
  const time = new Date()
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
  return `${time}-${randomBytes(4).toString('hex')}`;
}

/** A serve dir being rebuilt: the new generation, invisible until `publish()`. */
export class VexServeDirBuilder {
  private constructor(
    readonly dir: string,
    readonly generation: string,
    private readonly prefix: string,
    private readonly lock: HeldLock,
  ) {}

  /** Names this tool gives generations and temporary links of DIR, and nothing else. */
  private static namesOf(prefix: string): { generation: RegExp; link: RegExp } {
    const escaped = prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    return {
      generation: new RegExp(`^${escaped}\\.${GENERATION}\\d{8}T\\d{6}Z-[0-9a-f]{8}$`),
      link: new RegExp(`^${escaped}\\.${LINK}[0-9a-f]{8}$`),
    };
  }

  /**
   * Checks DIR (absent, an empty directory, or a link this tool made) and creates a new,
   * empty generation beside it. Fails before anything is read when DIR cannot be managed.
   */
  static async start(dir: string): Promise<VexServeDirBuilder> {
    const path = resolve(dir);
    const parent = dirname(path);
    const prefix = `.${basename(path)}`;
    await mkdir(parent, { recursive: true });
    // One run per DIR: a second one would prune this run's generation as a leftover.
    const attempt = await acquireLock(join(parent, `${prefix}.lock`), 'publish');
    if (!attempt.acquired) {
      const holder = attempt.state.holder;
      throw new PublishError(
        'SERVE_DIR_BUSY',
        `another trivy-airgap${holder === undefined ? '' : ` (pid ${holder.pid})`} is publishing into ${path}`,
        { subject: path, hint: 'wait for it to finish, then run this again' },
      );
    }
    try {
      return await VexServeDirBuilder.prepare(path, parent, prefix, attempt.lock);
    } catch (error) {
      await attempt.lock.release();
      throw error;
    }
  }

  private static async prepare(
    path: string,
    parent: string,
    prefix: string,
    lock: HeldLock,
  ): Promise<VexServeDirBuilder> {
    const info = await lstat(path).catch(() => undefined);
    if (info !== undefined) {
      const ours =
        info.isSymbolicLink() && VexServeDirBuilder.namesOf(prefix).generation.test(await readlink(path));
      const empty = info.isDirectory() && (await readdir(path)).length === 0;
      if (!ours && !empty) {
        throw new PublishError(
          'SERVE_DIR_INVALID',
          `${path} exists and is not a serve dir made by trivy-airgap (a link to ${prefix}.${GENERATION}…); it is left alone`,
          {
            subject: path,
            hint: 'give a new path (point the web server at it; it is a symbolic link), or empty/remove this one',
          },
        );
      }
    }
    const generation = join(parent, `${prefix}.${GENERATION}${stamp()}`);
    await mkdir(generation, { mode: 0o755 });
    return new VexServeDirBuilder(path, generation, prefix, lock);
  }

  /** Where the bundle pass writes a repository's archive (inside the new generation). */
  archivePath(component: VexComponent): string {
    return resolveInside(
      this.generation,
      `${component.name}/${servedArchiveName(component)}`,
      'VEX repository',
    );
  }

  /**
   * Writes each repository's served manifest and the client repository.yaml into the new
   * generation, checks every archive as a client would unpack it (index.json in the subdir,
   * every listed document present, nothing escaping), fsyncs, and publishes the generation.
   */
  async finish(
    baseUrl: string,
    repositories: readonly { component: VexComponent; manifestBytes: Buffer }[],
    options: { allowDowngrade?: boolean; onProgress?: ProgressListener } = {},
  ): Promise<VexServeDirResult> {
    for (const { component } of repositories) {
      const reason = await this.olderThanServed(component);
      if (reason === undefined) continue;
      if (options.allowDowngrade !== true) {
        throw new PublishError(
          'DOWNGRADE_REFUSED',
          `${this.dir} serves a newer ${component.name} VEX repository than the bundle's (${reason}); refusing to roll it back`,
          {
            subject: join(this.dir, component.name),
            hint: 'publish a newer bundle; to serve this older content on purpose pass --allow-downgrade',
          },
        );
      }
      options.onProgress?.({
        type: 'warning',
        message: `serving an older ${component.name} VEX repository (${reason}) as --allow-downgrade asks`,
      });
    }
    const served: ServedVexRepository[] = [];
    for (const { component, manifestBytes } of repositories) {
      const url = `${baseUrl}/${component.name}`;
      const location = servedLocation(baseUrl, component);
      // The served location must read back as what the bundle's archive is.
      const parsed = parseLocationUrl(location);
      if (parsed.archiveType !== component.archiveType || parsed.subdir !== component.subdir) {
        throw new Error(`internal: served location ${location} does not describe the archive`);
      }
      // The archive bytes were checked by the bundle pass (prepare.ts) exactly as a client unpacks them.
      const manifestPath = resolveInside(
        this.generation,
        `${component.name}/${WELL_KNOWN_VEX_MANIFEST}`,
        'VEX repository',
      );
      await mkdir(dirname(manifestPath), { recursive: true, mode: 0o755 });
      await writeFile(manifestPath, servedRepositoryManifest(manifestBytes, location), { mode: 0o644 });
      served.push({
        name: component.name,
        url,
        manifestUrl: `${url}/${WELL_KNOWN_VEX_MANIFEST}`,
        location,
        files: [
          `${component.name}/${WELL_KNOWN_VEX_MANIFEST}`,
          `${component.name}/${servedArchiveName(component)}`,
        ],
      });
    }
    const repositoryYaml = clientRepositoryYaml(served);
    await writeFile(join(this.generation, 'repository.yaml'), repositoryYaml, { mode: 0o644 });
    await syncTree(this.generation);
    const previous = await this.publish();
    const cleaned = await this.clean(previous);
    await this.lock.release();
    return {
      dir: this.dir,
      generation: this.generation,
      baseUrl,
      repositories: served,
      repositoryYaml,
      cleaned,
    };
  }

  /**
   * Why the bundle's repository is older than the one DIR serves now (index.json `updated_at`),
   * or undefined when it is not, or nothing (readable) is served.
   */
  private async olderThanServed(component: VexComponent): Promise<string | undefined> {
    if (component.updatedAt === undefined) return undefined;
    const base = resolveInside(this.dir, component.name, 'VEX repository');
    try {
      const manifest = parseVexRepositoryManifest(
        await readFile(join(base, ...WELL_KNOWN_VEX_MANIFEST.split('/'))),
      );
      const location = parseLocationUrl(manifest.version.locations[0] ?? '');
      const summary = await checkVexArchive(
        join(base, `archive.${location.archiveType}`),
        location.archiveType,
        location.subdir,
      );
      return downgradeReason({ updatedAt: component.updatedAt }, { updatedAt: summary.index.updatedAt });
    } catch {
      return undefined; // nothing served, or not readable as a repository: nothing to compare
    }
  }

  /** One rename makes the new generation what DIR shows. Returns what DIR showed before. */
  private async publish(): Promise<string | undefined> {
    const parent = dirname(this.dir);
    const info = await lstat(this.dir).catch(() => undefined);
    if (info?.isDirectory() === true) await rmdir(this.dir); // empty, checked in start()
    const previous = info?.isSymbolicLink() === true ? basename(await readlink(this.dir)) : undefined;
    const link = join(parent, `${this.prefix}.${LINK}${randomBytes(4).toString('hex')}`);
    await swapSymlink(this.dir, basename(this.generation), link);
    return previous;
  }

  /**
   * Removes generations other than the current and the previous one (requests in flight may
   * still read it), and stray links of interrupted runs.
   */
  private async clean(previous: string | undefined): Promise<string[]> {
    const parent = dirname(this.dir);
    const names = VexServeDirBuilder.namesOf(this.prefix);
    const generations: string[] = [];
    const removed: string[] = [];
    for (const name of await readdir(parent)) {
      if (names.link.test(name)) {
        await rm(join(parent, name), { force: true });
        removed.push(join(parent, name));
      } else if (names.generation.test(name) && name !== basename(this.generation) && name !== previous) {
        generations.push(name);
      }
    }
    for (const name of generations) {
      await rm(join(parent, name), { recursive: true, force: true });
      removed.push(join(parent, name));
    }
    return removed;
  }

  /** Drops the unpublished generation (on failure). */
  async discard(): Promise<void> {
    try {
      await rm(this.generation, { recursive: true, force: true });
    } finally {
      await this.lock.release();
    }
  }
}
