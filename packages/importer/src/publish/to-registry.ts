import {
  ignoreProgress,
  type Digest,
  type OciComponent,
  type OciComponentKind,
  type ProgressListener,
} from '@trivy-airgap/format';
import { CREATED_ANNOTATION, VERSION_ANNOTATION } from '@trivy-airgap/trivy';
import {
  OciError,
  formatReference,
  parseImageManifest,
  type Descriptor,
  type ImageReference,
  type OciLayout,
  type PushBlobResult,
  type RegistryClient,
} from '@trivy-airgap/oci';
import { ImporterError } from '../errors.js';
import { downgradeReason } from '../policy.js';
import { PublishError } from './errors.js';
import { targetReference, type RegistryTarget } from './target.js';

export interface PushedBlob {
  readonly digest: Digest;
  readonly size: number;
  readonly mediaType: string;
  /** `exists`: the registry had it, nothing was sent; `mounted`: cross-repo mount; `uploaded`. */
  readonly result: PushBlobResult;
}

export interface PushedArtifact {
  readonly kind: OciComponentKind;
  /** `HOST/PREFIX/trivy-db:2` */
  readonly reference: string;
  /** The manifest digest: the same as upstream's and the bundle's. */
  readonly digest: Digest;
  readonly blobs: readonly PushedBlob[];
  /** False when the tag already pointed at this exact manifest (nothing changed). */
  readonly tagMoved: boolean;
}

export interface PushArtifactsOptions {
  /** The verified OCI layout of the bundle. */
  readonly layout: OciLayout;
  /** The exact, verified manifest bytes per component (from the bundle pass). */
  readonly manifests: ReadonlyMap<OciComponentKind, Buffer>;
  readonly components: readonly OciComponent[];
  readonly target: RegistryTarget;
  readonly client: RegistryClient;
  /** Move a tag to content older than what it names now (otherwise DOWNGRADE_REFUSED). */
  readonly allowDowngrade?: boolean;
  readonly onProgress?: ProgressListener;
  readonly signal?: AbortSignal;
}

function registryAnswer(error: OciError): string {
  const codes = error.registryCodes.length > 0 ? ` ${error.registryCodes.join(',')}` : '';
  const words = error.registryMessage === undefined ? '' : `: ${error.registryMessage}`;
  return `${error.status === undefined ? error.code : `HTTP ${error.status}`}${codes}${words}`;
}

/** Turns a registry failure into a PublishError that says what was being pushed where. */
function pushFailure(
  error: unknown,
  subject: string,
  doing: string,
  manifestMediaTypes?: readonly string[],
): unknown {
  if (!(error instanceof OciError)) return error;
  const answer = registryAnswer(error);
  const base = {
    cause: error,
    subject,
    registryAnswer: answer,
    ...(error.status === undefined ? {} : { status: error.status }),
  };
  if (error.code === 'UNAUTHORIZED') {
    return new PublishError(
      'REGISTRY_UNAUTHORIZED',
      `${subject}: the registry refused the credentials while ${doing} (${answer})`,
      {
        ...base,
        hint: 'check --username/--password, --registry-token or docker login for this registry',
      },
    );
  }
  if (error.code === 'DENIED') {
    return new PublishError('REGISTRY_DENIED', `${subject}: the registry denied ${doing} (${answer})`, {
      ...base,
      hint: 'the credentials are valid but lack push permission for this repository',
    });
  }
  const refusedManifest =
    manifestMediaTypes !== undefined &&
    (error.code === 'UNSUPPORTED_MEDIA_TYPE' ||
      error.code === 'MANIFEST_INVALID' ||
      error.status === 400 ||
      error.status === 415);
  if (refusedManifest) {
    return new PublishError(
      'MEDIA_TYPE_REJECTED',
      `${subject}: the registry refused the manifest with media types ${manifestMediaTypes.join(', ')} (${answer})`,
      {
        ...base,
        mediaTypes: manifestMediaTypes,
        hint: 'allow these artifact media types in the registry (e.g. Harbor/Artifactory/Quay artifact settings) or use another registry',
      },
    );
  }
  return new PublishError('PUSH_FAILED', `${subject}: ${doing} failed: ${error.message}`, {
    ...base,
    ...(error.hint === undefined ? {} : { hint: error.hint }),
  });
}

interface Planned {
  readonly component: OciComponent;
  readonly ref: ImageReference;
  readonly shown: string;
  readonly bytes: Buffer;
  readonly mediaType: string;
  readonly blobs: readonly Descriptor[];
  readonly mediaTypes: readonly string[];
}

/**
 * Pushes the bundle's OCI artifacts to the site registry under upstream's repository names and
 * tags, with the manifest bytes unchanged (so every digest is upstream's). In three phases, so
 * that no tag ever names something incomplete: (1) every blob of every artifact (HEAD first:
 * a blob the registry has is not sent again; a blob another target repository already got is
 * mounted); (2) every manifest by digest — a registry that refuses a media type says so here,
 * before any tag moved; (3) the tags.
 */
export async function pushArtifacts(options: PushArtifactsOptions): Promise<PushedArtifact[]> {
  const { client, layout, signal } = options;
  const onProgress = options.onProgress ?? ignoreProgress;
  const planned: Planned[] = options.components.map((component) => {
    const bytes = options.manifests.get(component.kind);
    if (bytes === undefined) throw new Error(`internal: no verified manifest for ${component.kind}`);
    const manifest = parseImageManifest(bytes);
    const ref = targetReference(options.target, component);
    return {
      component,
      ref,
      shown: formatReference(ref),
      bytes,
      mediaType: component.manifest.mediaType,
      blobs: [manifest.config, ...manifest.layers],
      mediaTypes: [
        ...new Set([
          component.manifest.mediaType,
          ...(manifest.artifactType === undefined ? [] : [manifest.artifactType]),
          manifest.config.mediaType,
          ...manifest.layers.map((layer) => layer.mediaType),
        ]),
      ],
    };
  });

  // Every blob a manifest names must have come with the bundle (verified) before anything is sent.
  for (const plan of planned) {
    for (const blob of plan.blobs) {
      if (!(await layout.hasBlob(blob))) {
        throw new ImporterError(
          'BUNDLE_CONTENT_INVALID',
          `the ${plan.component.kind} manifest names blob ${blob.digest}, which the bundle does not carry`,
          {
            path: `oci/blobs/sha256/${blob.digest.slice('sha256:'.length)}`,
            hint: 'export the bundle again',
          },
        );
      }
    }
  }

  // (0) anti-rollback: a tag never moves to older content unless asked to.
  for (const plan of planned) {
    await checkNotOlder(client, plan, options.allowDowngrade === true, onProgress, signal);
  }

  // (1) blobs
  const pushedBlobs = new Map<OciComponentKind, PushedBlob[]>();
  const holders = new Map<Digest, string>();
  for (const plan of planned) {
    const task = `push:${plan.component.kind}`;
    const total = plan.blobs.reduce((sum, blob) => sum + blob.size, 0);
    onProgress({ type: 'task-start', task, label: `push ${plan.component.kind} to ${plan.shown}`, total });
    const results: PushedBlob[] = [];
    let before = 0;
    for (const blob of plan.blobs) {
      const holder = holders.get(blob.digest);
      let result: PushBlobResult;
      try {
        result = await client.pushBlob(plan.ref, blob, () => layout.openBlob(blob), {
          mountFrom: holder === undefined ? [] : [holder],
          onProgress: (done) => onProgress({ type: 'task-progress', task, done: before + done, total }),
          signal,
        });
      } catch (error) {
        onProgress({
          type: 'task-fail',
          task,
          reason: error instanceof Error ? error.message : String(error),
        });
        throw pushFailure(error, plan.shown, `pushing blob ${blob.digest}`);
      }
      before += blob.size;
      onProgress({ type: 'task-progress', task, done: before, total });
      holders.set(blob.digest, plan.ref.repository);
      results.push({ digest: blob.digest, size: blob.size, mediaType: blob.mediaType, result });
    }
    pushedBlobs.set(plan.component.kind, results);
  }

  // (2) manifests by digest, untagged
  for (const plan of planned) {
    const byDigest: ImageReference = {
      registry: plan.ref.registry,
      repository: plan.ref.repository,
      digest: plan.component.manifest.digest,
    };
    try {
      await client.pushManifest(byDigest, plan.bytes, plan.mediaType, signal);
    } catch (error) {
      onProgress({
        type: 'task-fail',
        task: `push:${plan.component.kind}`,
        reason: error instanceof Error ? error.message : String(error),
      });
      throw pushFailure(error, plan.shown, 'pushing the manifest', plan.mediaTypes);
    }
  }

  // (3) tags
  const pushed: PushedArtifact[] = [];
  for (const plan of planned) {
    const task = `push:${plan.component.kind}`;
    let tagMoved: boolean;
    try {
      const result = await client.pushManifest(plan.ref, plan.bytes, plan.mediaType, signal);
      tagMoved = result.pushed;
      if (result.digest !== plan.component.manifest.digest) {
        throw new Error(`internal: pushed ${result.digest}, expected ${plan.component.manifest.digest}`);
      }
    } catch (error) {
      onProgress({ type: 'task-fail', task, reason: error instanceof Error ? error.message : String(error) });
      throw pushFailure(error, plan.shown, 'setting the tag', plan.mediaTypes);
    }
    const blobs = pushedBlobs.get(plan.component.kind) ?? [];
    onProgress({
      type: 'task-done',
      task,
      summary: `manifest ${plan.component.manifest.digest.slice(0, 19)}…, blobs ${describeBlobs(blobs)}${
        tagMoved ? '' : ', tag unchanged'
      }`,
    });
    pushed.push({
      kind: plan.component.kind,
      reference: plan.shown,
      digest: plan.component.manifest.digest,
      blobs,
      tagMoved,
    });
  }
  return pushed;
}

function ageOf(annotations: Readonly<Record<string, string>> | undefined): {
  created?: string;
  version?: string;
} {
  const created = annotations?.[CREATED_ANNOTATION];
  const version = annotations?.[VERSION_ANNOTATION];
  return {
    ...(created === undefined ? {} : { created }),
    ...(version === undefined ? {} : { version }),
  };
}

/**
 * What the tag names now, compared with what the bundle brings (checks version, then the
 * `created` stamp of the manifest; the same rule as the local install's anti-rollback).
 * A tag that is missing, names the same manifest, or cannot be read as an image manifest passes.
 */
async function checkNotOlder(
  client: RegistryClient,
  plan: Planned,
  allowDowngrade: boolean,
  onProgress: ProgressListener,
  signal: AbortSignal | undefined,
): Promise<void> {
  let current: Descriptor | undefined;
  let annotations: Readonly<Record<string, string>> | undefined;
  try {
    current = await client.headManifest(plan.ref, signal);
    if (current === undefined || current.digest === plan.component.manifest.digest) return;
    const existing = await client.getManifest(plan.ref, { signal });
    try {
      annotations = parseImageManifest(existing.bytes).annotations;
    } catch {
      return; // not an artifact manifest (an index?): nothing to compare
    }
  } catch (error) {
    if (error instanceof OciError && (error.code === 'MANIFEST_UNKNOWN' || error.code === 'NAME_UNKNOWN'))
      return;
    throw pushFailure(error, plan.shown, 'reading what the tag names now');
  }
  const reason = downgradeReason(ageOf(plan.component.annotations), ageOf(annotations));
  if (reason === undefined) return;
  if (!allowDowngrade) {
    throw new PublishError(
      'DOWNGRADE_REFUSED',
      `${plan.shown} names newer content than the bundle's ${plan.component.kind} (${reason}); refusing to move the tag back`,
      {
        subject: plan.shown,
        hint: 'publish a newer bundle; to move the tag to this older content on purpose pass --allow-downgrade',
      },
    );
  }
  onProgress({
    type: 'warning',
    message: `moving ${plan.shown} to older content (${reason}) as --allow-downgrade asks`,
  });
}

/** `1 uploaded, 1 mounted, 2 already there` */
export function describeBlobs(blobs: readonly PushedBlob[]): string {
  const count = (result: PushBlobResult): number => blobs.filter((blob) => blob.result === result).length;
  const parts = [
    [count('uploaded'), 'uploaded'],
    [count('mounted'), 'mounted'],
    [count('exists'), 'already there'],
  ] as const;
  return parts
    .filter(([n]) => n > 0)
    .map(([n, what]) => `${n} ${what}`)
    .join(', ');
}
