import { isDigest, type Digest } from '@trivy-airgap/format';
import { OciError } from './errors.js';

/** A parsed image reference, `registry/repository[:tag][@digest]`, with Docker Hub names normalized. */
export interface ImageReference {
  /** Registry host as the user means it, with port: `ghcr.io`, `127.0.0.1:5000`, `docker.io`. */
  readonly registry: string;
  /** Repository path inside the registry: `aquasecurity/trivy-db`, `library/alpine`. */
  readonly repository: string;
  readonly tag?: string | undefined;
  readonly digest?: Digest | undefined;
}

export const DOCKER_HUB_REGISTRY = 'docker.io';
/** Docker Hub's registry API lives on another host than its name. */
export const DOCKER_HUB_API_HOST = 'index.docker.io';

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const HOST =
  /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:.]+\])(?::[0-9]{1,5})?$/;
const MAX_REFERENCE_LENGTH = 4096;

function invalid(ref: string, why: string): OciError {
  const shown = ref.length > 120 ? `${ref.slice(0, 120)}…` : ref;
  return new OciError('INVALID_REFERENCE', `invalid image reference ${JSON.stringify(shown)}: ${why}`);
}

/**
 * Parses `host/repo:tag`, `repo@sha256:…` or a bare Docker Hub name (`alpine` →
 * `docker.io/library/alpine`). The first path component is a registry host only when it
 * contains `.` or `:` or is `localhost`, as Docker decides it. A missing tag stays missing:
 * the caller picks the default (Trivy appends `:2`, `:1` or `:latest` depending on the artifact).
 */
export function parseReference(ref: string): ImageReference {
  if (ref.length === 0 || ref.length > MAX_REFERENCE_LENGTH) throw invalid(ref, 'empty or too long');
  let rest = ref;
  let digest: Digest | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    const digestText = rest.slice(at + 1);
    if (!isDigest(digestText)) throw invalid(ref, 'the digest must be sha256: followed by 64 lowercase hex');
    digest = digestText;
    rest = rest.slice(0, at);
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw invalid(ref, `bad tag ${JSON.stringify(tag)}`);
  }
  let registry = DOCKER_HUB_REGISTRY;
  let repository = rest;
  const firstSlash = rest.indexOf('/');
  if (firstSlash >= 0) {
    const first = rest.slice(0, firstSlash);
    if (first.includes('.') || first.includes(':') || first === 'localhost') {
      if (!HOST.test(first)) throw invalid(ref, `bad registry host ${JSON.stringify(first)}`);
      registry = first.toLowerCase();
      repository = rest.slice(firstSlash + 1);
    }
  }
  if (registry === DOCKER_HUB_API_HOST || registry === 'registry-1.docker.io') registry = DOCKER_HUB_REGISTRY;
  if (registry === DOCKER_HUB_REGISTRY && !repository.includes('/')) repository = `library/${repository}`;
  if (repository.length === 0 || !repository.split('/').every((c) => COMPONENT.test(c))) {
    throw invalid(ref, 'the repository must be lowercase path components separated by "/"');
  }
  return { registry, repository, tag, digest };
}

/** The canonical text form: `registry/repository[:tag][@digest]`. */
export function formatReference(ref: ImageReference): string {
  return `${ref.registry}/${ref.repository}${ref.tag === undefined ? '' : `:${ref.tag}`}${
    ref.digest === undefined ? '' : `@${ref.digest}`
  }`;
}

/** The host that serves the registry API for `registry` (Docker Hub's differs from its name). */
export function registryApiHost(registry: string): string {
  return registry === DOCKER_HUB_REGISTRY ? DOCKER_HUB_API_HOST : registry;
}

/** The same repository at another tag or digest. */
export function withTag(ref: ImageReference, tag: string): ImageReference {
  return { registry: ref.registry, repository: ref.repository, tag };
}

export function withDigest(ref: ImageReference, digest: Digest): ImageReference {
  return { registry: ref.registry, repository: ref.repository, tag: ref.tag, digest };
}

/** What to put after `/manifests/`: the digest when there is one (it pins the content), else the tag. */
export function manifestPathPart(ref: ImageReference): string {
  if (ref.digest !== undefined) return ref.digest;
  if (ref.tag !== undefined) return ref.tag;
  throw invalid(formatReference(ref), 'needs a tag or a digest');
}
