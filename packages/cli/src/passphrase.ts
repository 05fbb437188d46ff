import { close, fstat, open, readFile } from 'node:fs';
import { promisify } from 'node:util';
import { Socket } from 'node:net';
import { asFileSystemError } from '@trivy-airgap/format';
import { CliError } from './errors.js';

/** A passphrase file is one short line; more than this is not one. */
const MAX_PASSPHRASE_FILE = 64 * 1024;

/**
 * The bytes of a pipe (`--passphrase-file <(pass show key)`, a FIFO): read through the event
 * loop, not a blocking read in the thread pool, which would keep Ctrl-C from ending the process
 * while the writer has not written yet (Node joins its pool threads on exit).
 */
async function readPipe(fd: number): Promise<Buffer> {
  const socket = new Socket({ fd, readable: true, writable: false });
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of socket as AsyncIterable<Buffer>) {
    chunks.push(chunk);
    size += chunk.length;
    if (size > MAX_PASSPHRASE_FILE || chunk.includes(0x0a)) break; // the first line is all we use
  }
  socket.destroy();
  return Buffer.concat(chunks);
}

/** Reads a passphrase file: its first line, without the line ending. */
export async function readPassphrase(path: string): Promise<string> {
  let bytes: Buffer;
  try {
    const fd = await promisify(open)(path, 'r');
    let owned = true;
    try {
      if ((await promisify(fstat)(fd)).isFIFO()) {
        owned = false; // the socket closes it
        bytes = await readPipe(fd);
      } else {
        bytes = await promisify(readFile)(fd);
      }
    } finally {
      if (owned) await promisify(close)(fd).catch(() => undefined);
    }
  } catch (error) {
    throw asFileSystemError(error, { where: path, pathHint: 'check the --passphrase-file path' });
  }
  return firstLine(path, bytes);
}

function firstLine(path: string, bytes: Buffer): string {
  const passphrase = bytes.toString('utf8').split(/\r?\n/, 1)[0] ?? '';
  if (passphrase.length === 0) {
    throw new CliError('PASSPHRASE_FILE', `the passphrase file ${path} is empty`);
  }
  return passphrase;
}
