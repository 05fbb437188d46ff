import type { CliIo, Output } from './output.js';

/** What every command handler gets: where to print and the process environment. */
export interface CommandContext {
  readonly io: CliIo;
  readonly out: Output;
  readonly toolVersion: string;
}
