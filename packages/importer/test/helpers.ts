import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import {
  buildBundle,
  defaultTestKey,
  type BuildBundleOptions,
  type BuiltBundle,
} from '@trivy-airgap/test-utils';

/** A temp dir removed after the test file. */
export function workDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `airgap-${prefix}-`));
  after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The trusted public key file of the default test key, in `dir`. */
export function trustFile(dir: string): string {
  const path = join(dir, 'signing.pub');
  writeFileSync(path, defaultTestKey().publicKeyPem);
  return path;
}

let counter = 0;
/** Builds a bundle and writes it to a new file in `dir`. */
export function bundleFile(dir: string, options: BuildBundleOptions): { path: string; bundle: BuiltBundle } {
  const bundle = buildBundle(options);
  const path = join(dir, `bundle-${++counter}.tgz`);
  writeFileSync(path, bundle.bytes);
  return { path, bundle };
}

export function writeBytes(dir: string, bytes: Buffer): string {
  const path = join(dir, `bytes-${++counter}.tgz`);
  writeFileSync(path, bytes);
  return path;
}

export { treeDigest, treeList } from '@trivy-airgap/test-utils';
