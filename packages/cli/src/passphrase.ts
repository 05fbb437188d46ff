import { close, constants, fstat, open, read } from 'node:fs';
import { Socket } from 'node:net';
import { promisify } from 'node:util';
import { asFileSystemError } from '@trivy-airgap/format';
import { CliError } from './errors.js';

/** A passphrase file is one short line; its first line must end within this many bytes. */
const MAX_PASSPHRASE_FILE = 64 * 1024;

/**
 * Up to MAX_PASSPHRASE_FILE bytes of a pipe (`--passphrase-file <(pass show key)`, a FIFO), read
 * through the event loop: a blocking open or read in the thread pool would keep Ctrl-C from ending
 * the process while no writer has come yet (Node joins its pool threads on exit).
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
  return Buffer.concat(chunks).subarray(0, MAX_PASSPHRASE_FILE + 1);
}

/** Up to MAX_PASSPHRASE_FILE + 1 bytes of a regular file (a wrong path to a big file is not read whole). */
async function readHead(fd: number): Promise<Buffer> {
  const buffer = Buffer.alloc(MAX_PASSPHRASE_FILE + 1);
  let filled = 0;
  while (filled < buffer.length) {
    const { bytesRead } = await promisify(read)(fd, buffer, filled, buffer.length - filled, null);
    if (bytesRead === 0) break;
    filled += bytesRead;
  }
  return buffer.subarray(0, filled);
}

/** Reads a passphrase file: its first line, without the line ending. */
export async function readPassphrase(path: string): Promise<string> {
  let bytes: Buffer;
  try {
    // Non-blocking open: a FIFO opens at once even before its writer does (see readPipe).
    const fd = await promisify(open)(path, constants.O_RDONLY | constants.O_NONBLOCK);
    let owned = true;
    try {
      if ((await promisify(fstat)(fd)).isFIFO()) {
        owned = false; // the socket closes it
        bytes = await readPipe(fd);
      } else {
        bytes = await readHead(fd);
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
  const end = bytes.indexOf(0x0a);
  if (end < 0 && bytes.length > MAX_PASSPHRASE_FILE) {
    throw new CliError(
      'PASSPHRASE_FILE',
      `the passphrase file ${path} has no line end in its first ${MAX_PASSPHRASE_FILE} bytes: not a passphrase file`,
    );
  }
  const passphrase = bytes.toString('utf8').split(/\r?\n/, 1)[0] ?? '';
  if (passphrase.length === 0) {
    throw new CliError('PASSPHRASE_FILE', `the passphrase file ${path} is empty`);
  }
  return passphrase;
}
