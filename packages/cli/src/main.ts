#!/usr/bin/env node
import { Cancellation } from './cancel.js';
import { EXIT_CANCELLED } from './exit-codes.js';
import { stopWritingWhenClosed } from './output.js';
import { run } from './run.js';

stopWritingWhenClosed(process.stdout);
stopWritingWhenClosed(process.stderr);

// Outside cancellable work (or on a second signal) a signal ends the run at once, as cancelled.
const cancellation = new Cancellation(() => {
  process.stderr.write('cancelled\n');
  process.exit(EXIT_CANCELLED);
});
cancellation.listen(process);

const code = await run(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  cwd: process.cwd(),
  cancellation,
});
process.exitCode = code;
