import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import {
  blobPath,
  ignoreProgress,
  resolveInside,
  type Digest,
  type OciComponent,
  type OciComponentKind,
  type ProgressListener,
  type VerifiedSignature,
  type VexComponent,
} from '@trivy-airgap/format';
import { OciLayout, RegistryClient, type RegistryClientOptions } from '@trivy-airgap/oci';
import type { PolicyOptions, VerificationCheck } from '../policy.js';
import type { BundleInput } from '../source.js';
import type { TrustOptions } from '../trust.js';
import { PublishError } from './errors.js';
import { readVerifiedBundle } from './read.js';
import {
  formatTarget,
  parseRegistryTarget,
  trivyRegistrySettings,
  type RegistryTarget,
  type TrivyRegistrySettings,
} from './target.js';
import { pushArtifacts, type PushedArtifact } from './to-registry.js';
import { VexServeDirBuilder, parseVexBaseUrl, type VexServeDirResult } from './vex-serve-dir.js';

export interface ToRegistryOptions {
  /** `HOST[:PORT][/PREFIX]` (see parseRegistryTarget). */
  readonly target: string | RegistryTarget;
  /** Transport (TLS, CA, plain HTTP, proxy), credentials and event listener of the registry client. */
  readonly client: RegistryClientOptions;
}

export interface VexServeOptions {
  /** The directory a web server serves (managed as a link to generation directories beside it). */
  readonly dir: string;
  /** The URL the web server serves `dir` at. */
  readonly baseUrl: string;
}

export interface PublishBundleOptions extends PolicyOptions, TrustOptions {
  readonly bundle: BundleInput;
  readonly stdin?: Readable;
  readonly toRegistry?: ToRegistryOptions;
  readonly vexServe?: VexServeOptions;
  /** Move registry tags, or the served VEX repositories, to older content (refused otherwise). */
  readonly allowDowngrade?: boolean;
  /** Where the verified OCI blobs wait for the push (default: the OS temp dir); removed afterwards. */
  readonly workDir?: string;
  readonly onProgress?: ProgressListener;
  readonly signal?: AbortSignal;
}

export interface RegistryPublishResult {
  /** `HOST[/PREFIX]` */
  readonly target: string;
  readonly artifacts: readonly PushedArtifact[];
  /** What Trivy clients of the registry need (no skip flags: they download as from upstream). */
  readonly trivy: TrivyRegistrySettings;
}

export interface PublishBundleResult {
  readonly bundleId: string;
  readonly manifestDigest: Digest;
  readonly signature: VerifiedSignature | null;
  readonly warnings: readonly string[];
  readonly checks: readonly VerificationCheck[];
  readonly registry?: RegistryPublishResult;
  readonly vex?: VexServeDirResult;
}

/**
 * Publishes a bundle inside the air gap, for sites that point every Trivy at shared services:
 * its OCI artifacts pushed to the site registry (`toRegistry`) and/or its VEX repositories laid
 * out for a static web server (`vexServe`). The bundle is read once and verified completely
 * (signature, every digest, layer contents) BEFORE anything is pushed or published; a failure
 * leaves no tag moved and the served VEX tree as it was. Never touches Trivy's cache.
 */
export async function publishBundle(options: PublishBundleOptions): Promise<PublishBundleResult> {
  const onProgress = options.onProgress ?? ignoreProgress;
  const { toRegistry, vexServe } = options;
  if (toRegistry === undefined && vexServe === undefined) {
    throw new PublishError('NOTHING_TO_PUBLISH', 'neither a registry nor a VEX serve dir was given');
  }
  // Settings are checked before the bundle is read.
  const target =
    toRegistry === undefined
      ? undefined
      : typeof toRegistry.target === 'string'
        ? parseRegistryTarget(toRegistry.target)
        : toRegistry.target;
  const baseUrl = vexServe === undefined ? undefined : parseVexBaseUrl(vexServe.baseUrl);
  const builder = vexServe === undefined ? undefined : await VexServeDirBuilder.start(vexServe.dir);
  let work: string | undefined;
  let published = false;
  try {
    if (target !== undefined) work = await mkdtemp(join(options.workDir ?? tmpdir(), 'trivy-airgap-push-'));
    const verified = await readVerifiedBundle({
      ...options,
      onProgress,
      onTrusted: (trusted) => {
        const components = trusted.manifest.components;
        if (target !== undefined && !components.some((c) => c.kind !== 'vex')) {
          throw new PublishError(
            'NOTHING_TO_PUBLISH',
            'the bundle holds no OCI artifact (DB, Java DB, checks) to push to the registry',
          );
        }
        if (builder !== undefined && !components.some((c) => c.kind === 'vex')) {
          throw new PublishError('NOTHING_TO_PUBLISH', 'the bundle holds no VEX repository to serve');
        }
        const vexCount = components.filter((c) => c.kind === 'vex').length;
        if (builder === undefined && vexCount > 0) {
          onProgress({
            type: 'note',
            message: `the bundle's ${vexCount} VEX repositor${vexCount === 1 ? 'y is' : 'ies are'} not published for a web server (no VEX serve dir given)`,
          });
        }
        const ociCount = components.length - vexCount;
        if (target === undefined && ociCount > 0) {
          onProgress({
            type: 'note',
            message: `the bundle's ${ociCount} OCI artifact${ociCount === 1 ? ' is' : 's are'} not pushed to a registry (no registry given)`,
          });
        }
        return Promise.resolve();
      },
      destinationOf: (file, role) => {
        if (work !== undefined && file.path.startsWith('oci/')) return resolveInside(work, file.path);
        if (builder !== undefined && role.kind === 'vex-archive') return builder.archivePath(role.component);
        return undefined;
      },
    });
    const components = verified.manifest.components;

    let registry: RegistryPublishResult | undefined;
    if (target !== undefined && toRegistry !== undefined && work !== undefined) {
      const ociComponents = components.filter((c): c is OciComponent => c.kind !== 'vex');
      const manifests = new Map<OciComponentKind, Buffer>();
      for (const component of ociComponents) {
        const bytes = verified.smallFiles.get(blobPath(component.manifest.digest));
        if (bytes === undefined) throw new Error(`internal: ${component.kind} manifest was not kept`);
        manifests.set(component.kind, bytes);
      }
      const layout = await OciLayout.open(join(work, 'oci'));
      const client = new RegistryClient(toRegistry.client);
      try {
        const artifacts = await pushArtifacts({
          layout,
          manifests,
          components: ociComponents,
          target,
          client,
          onProgress,
          allowDowngrade: options.allowDowngrade === true,
          ...(options.signal === undefined ? {} : { signal: options.signal }),
        });
        const transport = toRegistry.client.transport;
        const credentials = toRegistry.client.credentials;
        registry = {
          target: formatTarget(target),
          artifacts,
          trivy: trivyRegistrySettings(Object.fromEntries(artifacts.map((a) => [a.kind, a.reference])), {
            plainHttp: transport.plainHttp,
            insecure: transport.insecure,
            caCert: transport.caCertPem !== undefined,
            authenticated: credentials?.username !== undefined || credentials?.registryToken !== undefined,
            trivyVersion: verified.manifest.trivyVersions,
          }),
        };
      } finally {
        await client.close();
      }
    }

    let vex: VexServeDirResult | undefined;
    if (builder !== undefined && baseUrl !== undefined) {
      const repositories = components
        .filter((c): c is VexComponent => c.kind === 'vex')
        .map((component) => {
          const manifestBytes = verified.smallFiles.get(component.manifestPath);
          if (manifestBytes === undefined)
            throw new Error(`internal: ${component.manifestPath} was not kept`);
          return { component, manifestBytes };
        });
      onProgress({ type: 'task-start', task: 'vex-serve', label: `VEX serve dir ${builder.dir}` });
      vex = await builder.finish(baseUrl, repositories, {
        allowDowngrade: options.allowDowngrade === true,
        onProgress,
      });
      published = true;
      onProgress({
        type: 'task-done',
        task: 'vex-serve',
        summary: `${vex.repositories.map((r) => r.name).join(', ')} served from ${vex.dir} at ${baseUrl}`,
      });
    }

    return {
      bundleId: verified.manifest.bundleId,
      manifestDigest: verified.manifestDigest,
      signature: verified.signature,
      warnings: verified.warnings,
      checks: verified.allChecks,
      ...(registry === undefined ? {} : { registry }),
      ...(vex === undefined ? {} : { vex }),
    };
  } finally {
    if (work !== undefined) await rm(work, { recursive: true, force: true });
    if (builder !== undefined && !published) await builder.discard();
  }
}
