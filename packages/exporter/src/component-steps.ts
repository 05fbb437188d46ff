import { blobPath, digestOfBytes, type Component, type OciComponentKind } from '@trivy-airgap/format';
import { ARTIFACTS, CREATED_ANNOTATION, perKind, type DefaultSources } from '@trivy-airgap/trivy';
import type { BundleEntry } from './bundle-writer.js';
import type { ExportComponentKind, ExportedComponent, ExportOptions } from './export.js';
import {
  fetchOciComponent,
  verifyWithMirrors,
  type OciFetchContext,
  type PendingLayer,
} from './oci-component.js';
import { fetchVexRepository, type VexFetchContext } from './vex-component.js';

/**
 * Export, one step per component kind: what exportBundle runs for each kind asked for. The facts
 * (repositories per Trivy release, media types, tags, schema) come from the component table in
 * @trivy-airgap/trivy; a step holds only how its kind is fetched. Steps run at the same time.
 */

/** What every step gets: the run's clients and work dir, Trivy's sources, the options. */
export interface ExportStepContext {
  readonly oci: OciFetchContext;
  readonly vex: VexFetchContext;
  /** The repositories the targeted Trivy release pulls from (the table's rows for it). */
  readonly sources: DefaultSources;
  readonly options: ExportOptions;
  readonly signal: AbortSignal;
}

/** One fetched component, ready to be written into the bundle. */
export interface FetchedComponent {
  readonly component: Component;
  /** The files it adds to the bundle, in bundle order. */
  readonly entries: readonly BundleEntry[];
  /** An OCI artifact's manifest: listed in oci/index.json under `layoutRef`. */
  readonly indexed?: {
    readonly mediaType: string;
    readonly digest: string;
    readonly size: number;
    readonly layoutRef: string;
  };
  /** Work-dir files the bundle was made from besides the entries' own (kept by the prune). */
  readonly used: readonly string[];
  readonly summary: ExportedComponent;
  /** A layer not in the work dir: its entry streams it from the registry; cancel when unused. */
  readonly pendingLayer?: PendingLayer | undefined;
}

export interface ExportStep {
  /** Fetches the kind's components: its one artifact, or every VEX repository asked for. */
  fetch(context: ExportStepContext): Promise<FetchedComponent[]>;
}

/** A bundle entry whose bytes are in memory (an OCI manifest, a VEX repository manifest). */
export function bytesEntry(path: string, bytes: Buffer): BundleEntry {
  return { path, size: bytes.length, digest: digestOfBytes(bytes), source: { bytes } };
}

function nonEmpty(list: readonly string[] | undefined): readonly string[] | undefined {
  return list === undefined || list.length === 0 ? undefined : list;
}

/** An OCI artifact: the given repositories (its option), else the targeted Trivy's defaults. */
function ociStep(kind: OciComponentKind): ExportStep {
  return {
    async fetch(context) {
      const { options, sources } = context;
      context.signal.throwIfAborted();
      const asked = nonEmpty(options.repositories?.[kind]);
      const repositories = asked ?? sources[kind];
      // The checks major the targeted Trivy expects, from its default tag (`:2` → 2).
      const tag = /:(\d+)$/.exec(sources[kind][0] ?? '')?.[1];
      const result = await fetchOciComponent(context.oci, kind, repositories, {
        expectedChecksMajor:
          ARTIFACTS[kind].metadataFormat === 'policy' && tag !== undefined ? Number(tag) : undefined,
        trivyVersion: options.trivyVersion,
      });
      let confirmedBy: string[] | undefined;
      if (options.verifyMirrors === true) {
        // The same content is also published under other names (the table's alsoPublishedAt).
        const mirrors =
          asked === undefined
            ? repositories.flatMap((repository) => [
                repository,
                ...ARTIFACTS[kind].alsoPublishedAt.flatMap(({ prefix, replacement }) =>
                  repository.startsWith(prefix) ? [replacement + repository.slice(prefix.length)] : [],
                ),
              ])
            : repositories;
        try {
          confirmedBy = await verifyWithMirrors(context.oci, kind, result.component, [...new Set(mirrors)]);
        } catch (error) {
          result.pendingLayer?.cancel(); // refused after all: the layer's bytes are never read
          throw error;
        }
      }
      const { component } = result;
      const entries: BundleEntry[] = [bytesEntry(blobPath(component.manifest.digest), result.manifestBytes)];
      for (const blob of result.blobs) {
        entries.push({
          path: blobPath(blob.descriptor.digest),
          size: blob.descriptor.size,
          digest: blob.descriptor.digest,
          // blobs/sha256/<hex> of the work dir; checked again while packing unless this run verified it
          source: { file: blob.file },
          verify: !blob.fresh,
        });
      }
      const pending = result.pendingLayer;
      // Not in the work dir yet: streams from the registry into the bundle (verified by the
      // download itself, teed into the work dir), after the config as when it is reused.
      if (pending !== undefined) {
        entries.push({
          path: blobPath(pending.descriptor.digest),
          size: pending.descriptor.size,
          digest: pending.descriptor.digest,
          source: { stream: (write) => pending.stream(write) },
        });
      }
      return [
        {
          component,
          entries,
          indexed: { ...component.manifest, layoutRef: component.layoutRef },
          used: [
            context.oci.layout.blobPath(component.manifest.digest),
            context.oci.layout.blobPath(component.layer.digest),
          ],
          pendingLayer: pending,
          summary: {
            kind,
            source: component.source,
            servedBy: component.servedBy,
            digest: component.manifest.digest,
            layerDigest: component.layer.digest,
            size: component.layer.size,
            published: component.annotations[CREATED_ANNOTATION],
            version: component.version,
            reused: result.reusedLayer,
            confirmedBy,
          },
        },
      ];
    },
  };
}

const vexStep: ExportStep = {
  async fetch(context) {
    const specs = context.options.vexRepositories ?? context.sources.vex;
    const done: FetchedComponent[] = [];
    for (const spec of specs) {
      context.signal.throwIfAborted();
      const result = await fetchVexRepository(context.vex, spec);
      done.push({
        component: result.component,
        entries: [
          bytesEntry(result.component.manifestPath, result.manifestBytes),
          {
            path: result.component.archivePath,
            size: result.archive.size,
            digest: result.archive.digest,
            source: { file: result.archive.file },
            verify: true, // small, and possibly an earlier run's copy
          },
        ],
        used: result.stateFile === undefined ? [] : [result.stateFile],
        summary: {
          kind: 'vex',
          name: spec.name,
          source: spec.url,
          servedBy: result.component.servedBy,
          digest: result.archive.digest,
          size: result.archive.size,
          updatedAt: result.component.updatedAt,
          reused: result.reused,
        },
      });
    }
    return done;
  },
};

/** The step of each kind exportBundle can export: every OCI artifact alike, VEX its own. */
export const EXPORT_STEPS: Readonly<Record<ExportComponentKind, ExportStep>> = perKind(ociStep, vexStep);
