import { lstat, readdir } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';

/**
 * A cheap fingerprint of an installed generation: every entry's relative path, type, size, mtime
 * and inode, hashed. Nothing of ours writes into a generation once it is installed, but Trivy run
 * without the skip flags does, through our links (measured by the conformance suite, see
 * docs/cache-layout.md): an online checks update empties and refills `policy/content` and rewrites
 * `policy/metadata.json`, a VEX update renames and replaces `0.1/`, Trivy 0.62 and older delete
 * `db/metadata.json` first. Each of those changes this fingerprint. It detects such accidents,
 * not an adversary (a content hash would cost a full read of the DB).
 * Undefined when the directory does not exist.
 */
export async function generationFingerprint(dir: string): Promise<string | undefined> {
  const root = await lstat(dir, { bigint: true }).catch(() => undefined);
  if (root?.isDirectory() !== true) return undefined;
  const lines: string[] = [];
  const walk = async (path: string, rel: string): Promise<void> => {
    for (const name of (await readdir(path)).sort()) {
      const child = join(path, name);
      const relPath = rel === '' ? name : `${rel}/${name}`;
      const info = await lstat(child, { bigint: true });
      const type = info.isDirectory() ? 'd' : info.isFile() ? 'f' : info.isSymbolicLink() ? 'l' : 'o';
      // A directory's own mtime changes when an entry is added or removed; its entries say that.
      const size = type === 'd' ? 0n : info.size;
      const mtime = type === 'd' ? 0n : info.mtimeNs;
      lines.push(`${relPath}\0${type}\0${size}\0${mtime}\0${info.ino}`);
      if (type === 'd') await walk(child, relPath);
    }
  };
  await walk(dir, '');
  return `sha256:${createHash('sha256').update(lines.join('\n')).digest('hex')}`;
}
