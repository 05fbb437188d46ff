import { createHash } from 'node:crypto';
import { existsSync, lstatSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A digest of a whole tree: every path, its type, mode bits, file contents and link targets (not
 * timestamps). Equal digests mean the tree is byte-for-byte the same: "the cache is as it was".
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

/** A plain list of the tree (`dir/`, `file`, `link -> target`), for failure messages. */
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
