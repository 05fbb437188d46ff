import { Readable, Writable } from 'node:stream';
import { run } from '../src/index.js';
import type { Run, RunOptions } from './process.js';

/**
 * The CLI through its exported run(), in this process: the same argv, working directory,
 * environment and stdin a process would get, its output collected. For tests where the process
 * itself is not the point (process.ts has those that are: the real binary's exit, a terminal,
 * signals, closed pipes); a spawn costs ~0.3 s of Node startup, this costs nothing.
 */
export async function runCli(args: readonly string[], options: RunOptions): Promise<Run> {
  const stdout = new Collected();
  const stderr = new Collected();
  const code = await run(args, {
    stdout,
    stderr,
    env: options.env,
    cwd: options.cwd,
    stdin: Readable.from(options.input === undefined ? [] : [Buffer.from(options.input)]),
  });
  return { code, signal: null, stdout: stdout.text, stderr: stderr.text };
}

/** A sink that keeps what was written, like a pipe to a file. */
class Collected extends Writable {
  private readonly chunks: Buffer[] = [];

  get text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    this.chunks.push(chunk);
    done();
  }
}
