import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  FormatError,
  MANIFEST_MEDIA_TYPE,
  isInside,
  parseManifest,
  parseManifestBytes,
  resolveInside,
  type BundleManifest,
} from '../src/index.js';
import { sampleManifest } from './sample-manifest.js';

/**
 * Property tests (fast-check) for the manifest parser and every path rule it applies: thousands
 * of generated manifests, most of them a valid manifest with one field replaced by something
 * hostile. Whatever comes in, the parser returns a manifest or throws a FormatError (never
 * anything else, never a crash), and in a manifest it accepts every string that becomes part of a
 * path resolves inside its root.
 */

const ROOT = '/site/cache/.trivy-airgap/staging/gen';

const valid = sampleManifest;

/** Strings an attacker would try where a path, name or version goes. */
const hostileString = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc
    .array(
      fc.constantFrom(
        '..',
        '.',
        '',
        'a',
        'A',
        '0.1',
        '/',
        '\\',
        ':',
        'C:',
        '\u0000',
        '\n',
        '\u202e',
        'é',
        'e\u0301',
        '%2e%2e',
        '~',
        '?',
        '#',
      ),
      { maxLength: 8 },
    )
    .map((parts) => parts.join('/')),
  fc.array(fc.constantFrom('..', 'x', '.'), { minLength: 1, maxLength: 6 }).map((parts) => parts.join('/')),
  fc.constantFrom('/etc/passwd', '../../x', '0.1/../..', '/', '', 'x'.repeat(300)),
);

const hostileValue = fc.oneof(hostileString, fc.jsonValue({ maxDepth: 2 }));

/** Paths inside the manifest where a replacement lands (each a string today). */
const FIELDS: readonly (readonly (string | number)[])[] = [
  ['bundleId'],
  ['components', 0, 'tag'],
  ['components', 0, 'layoutRef'],
  ['components', 0, 'layer', 'title'],
  ['components', 0, 'source'],
  ['components', 1, 'name'],
  ['components', 1, 'specVersion'],
  ['components', 1, 'subdir'],
  ['components', 1, 'manifestPath'],
  ['components', 1, 'archivePath'],
  ['components', 1, 'url'],
  ['components', 1, 'location'],
  ['files', 0, 'path'],
  ['files', 2, 'path'],
  ['files', 3, 'path'],
];

function setAt(target: unknown, path: readonly (string | number)[], value: unknown): void {
  let node = target as Record<string | number, unknown>;
  for (const key of path.slice(0, -1)) node = node[key] as Record<string | number, unknown>;
  node[path[path.length - 1]!] = value;
}

function parseTyped(value: unknown): BundleManifest | undefined {
  try {
    return parseManifest(value);
  } catch (error) {
    assert.ok(error instanceof FormatError, `not a FormatError: ${String(error)}`);
    return undefined;
  }
}

/** Every string of an accepted manifest that an importer joins onto a directory. */
function assertPathsStayInside(manifest: BundleManifest): void {
  const inside = (relative: string): void => {
    const target = resolveInside(ROOT, relative);
    assert.ok(isInside(ROOT, target), `${relative} -> ${target}`);
  };
  for (const file of manifest.files) inside(file.path);
  for (const component of manifest.components) {
    if (component.kind === 'vex') {
      inside(`vex/${component.name}/${component.specVersion}`);
      inside(`archives/${component.name}.${component.archiveType}`);
      inside(component.manifestPath);
      inside(component.archivePath);
      if (component.subdir !== '') inside(component.subdir);
    } else {
      inside(component.layer.title);
      inside(`generations/${component.kind}/${manifest.bundleId}`);
    }
  }
}

describe('manifest parser properties', () => {
  it('a valid manifest with one field replaced by anything: typed errors only, accepted paths stay inside', () => {
    fc.assert(
      fc.property(fc.constantFrom(...FIELDS), hostileValue, (field, value) => {
        const manifest = structuredClone(valid()) as unknown;
        setAt(manifest, field, value);
        const parsed = parseTyped(manifest);
        if (parsed !== undefined) assertPathsStayInside(parsed);
      }),
      { numRuns: 3000 },
    );
  });

  it('several fields replaced at once, and extra components: typed errors only', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom(...FIELDS), hostileValue), { maxLength: 5 }),
        fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 2 }),
        (edits, extra) => {
          const manifest = structuredClone(valid()) as unknown as { components: unknown[] };
          for (const [field, value] of edits) setAt(manifest, field, value);
          manifest.components.push(...extra);
          const parsed = parseTyped(manifest);
          if (parsed !== undefined) assertPathsStayInside(parsed);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('arbitrary JSON values and arbitrary bytes: typed errors only', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 4 }), (value) => {
        parseTyped(value);
        parseTyped({
          mediaType: MANIFEST_MEDIA_TYPE,
          ...(typeof value === 'object' && value !== null && !Array.isArray(value) ? value : {}),
        });
      }),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        try {
          parseManifestBytes(bytes);
        } catch (error) {
          assert.ok(error instanceof FormatError, `not a FormatError: ${String(error)}`);
        }
      }),
      { numRuns: 1000 },
    );
  });
});

describe('path rule properties', () => {
  it('resolveInside: for any string, PATH_UNSAFE or a path strictly inside the root', () => {
    fc.assert(
      fc.property(hostileString, (relative) => {
        try {
          const target = resolveInside(ROOT, relative);
          assert.ok(isInside(ROOT, target), `${relative} -> ${target}`);
        } catch (error) {
          assert.ok(error instanceof FormatError && error.code === 'PATH_UNSAFE', String(error));
        }
      }),
      { numRuns: 5000 },
    );
  });
});
