import type { Readable, Writable } from 'node:stream';
import type { Cancellation } from './cancel.js';

export interface CliIo {
  readonly stdout: Writable & { isTTY?: boolean };
  readonly stderr: Writable & { isTTY?: boolean };
  readonly env: NodeJS.ProcessEnv;
  readonly cwd: string;
  /** What `-` reads a bundle from; default the process's stdin. */
  readonly stdin?: Readable & { isTTY?: boolean };
  /** Ctrl-C/SIGTERM handling of the process (absent when run() is called in-process). */
  readonly cancellation?: Cancellation;
}

/**
 * When the reader of a pipe goes away (`trivy-airgap inspect B | head -1`), writes fail with EPIPE
 * and Node would die of an unhandled 'error' event, mid-import if need be. Like other Unix tools the
 * CLI then just stops writing there (a destroyed stream drops later writes) and the command runs to
 * its normal end: an import completes and releases its lock. Other write errors on stdout/stderr
 * (a terminal that went away) cannot be reported anywhere either.
 */
export function stopWritingWhenClosed(stream: NodeJS.WritableStream): void {
  stream.on('error', () => undefined);
}

export interface OutputOptions {
  readonly json: boolean;
  readonly quiet: boolean;
  readonly debug: boolean;
}

/**
 * Where every printed byte goes. Machine output (`--json`) is one document on stdout and
 * nothing else; human results go to stdout; notes, warnings and progress go to stderr.
 */
export class Output {
  readonly json: boolean;
  readonly quiet: boolean;
  readonly debug: boolean;
  readonly color: boolean;

  constructor(
    readonly io: CliIo,
    options: OutputOptions,
  ) {
    this.json = options.json;
    this.quiet = options.quiet;
    this.debug = options.debug;
    // no-color.org: NO_COLOR disables colour when it is present AND not an empty string.
    const noColor = (io.env.NO_COLOR ?? '') !== '';
    this.color = io.stderr.isTTY === true && !noColor && io.env.TERM !== 'dumb';
  }

  /** Whether live progress (spinners, escape codes) may be drawn. */
  get interactive(): boolean {
    // A pseudo-terminal without a size (columns 0) makes spinners redraw garbage: treat it as no TTY.
    const columns = (this.io.stderr as { columns?: number }).columns ?? 0;
    return this.color && !this.quiet && !this.json && columns > 0;
  }

  /** A human note on stderr (suppressed by --quiet and --json). */
  note(line: string): void {
    if (!this.quiet && !this.json) this.io.stderr.write(`${line}\n`);
  }

  /** A warning on stderr; shown even with --quiet, because it changes what the user should trust. */
  warn(line: string): void {
    this.io.stderr.write(`${this.paint('33', 'warning:')} ${line}\n`);
  }

  /** The command's result: JSON on stdout with --json, otherwise the human lines on stdout. */
  result(value: unknown, humanLines: readonly string[]): void {
    if (this.json) {
      this.io.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
    } else if (!this.quiet) {
      for (const line of humanLines) this.io.stdout.write(`${line}\n`);
    }
  }

  paint(code: string, text: string): string {
    return this.color ? `\u001b[${code}m${text}\u001b[0m` : text;
  }
}
