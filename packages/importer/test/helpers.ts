import { createHash } from 'node:crypto';
import {
  existsSync,
  lstatSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
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

/**
 * A digest of a whole tree: every path, its type, mode bits, file contents and link targets
 * (not timestamps). Equal digests = byte-for-byte the same tree.
 */
export function treeDigest(root: string): string {
  const hash = createHash('sha256');
  const walk = (dir: string, rel: string): void => {
    let names: string[];
    try {
      names = readdirSync(dir).sort();
    } catch {
      hash.update(`missing ${rel}\n`);
      return;
    }
    for (const name of names) {
      const path = join(dir, name);
      const relPath = `${rel}/${name}`;
      const info = lstatSync(path);
      if (info.isSymbolicLink()) hash.update(`link ${relPath} -> ${readlinkSync(path)}\n`);
      else if (info.isDirectory()) {
        hash.update(`dir ${relPath} ${(info.mode & 0o7777).toString(8)}\n`);
        walk(path, relPath);
      } else {
        hash.update(`file ${relPath} ${(info.mode & 0o7777).toString(8)} `);
        hash.update(readFileSync(path));
        hash.update('\n');
      }
    }
  };
  walk(root, '');
  return hash.digest('hex');
}

/** A plain list of the tree, for failure messages. */
export function treeList(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string, rel: string): void => {
    const names = existsSync(dir) ? readdirSync(dir).sort() : [];
    for (const name of names) {
      const path = join(dir, name);
      const info = lstatSync(path);
      out.push(
        `${rel}${name}${info.isSymbolicLink() ? ` -> ${readlinkSync(path)}` : info.isDirectory() ? '/' : ''}`,
      );
      if (info.isDirectory() && !info.isSymbolicLink()) walk(path, `${rel}${name}/`);
    }
  };
  walk(root, '');
  return out;
}
