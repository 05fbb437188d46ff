#!/usr/bin/env node
import { Cancellation } from './cancel.js';
import { EXIT_CANCELLED } from './exit-codes.js';
import { stopWritingWhenClosed } from './output.js';
import { run } from './run.js';

stopWritingWhenClosed(process.stdout);
stopWritingWhenClosed(process.stderr);

// Outside cancellable work (or on a second signal) a signal ends the run at once, as cancelled,
// reported like any other error (one line, or the JSON error object under --json).
const cancellation = new Cancellation((signal) => {
  const args = process.argv.slice(2);
  const command = args.find((word) => !word.startsWith('-')) ?? 'trivy-airgap';
  const message = `${command} cancelled by ${signal}`;
  const hint = 'nothing is left half-done: an interrupted import or rollback is finished by the next run';
  if (args.includes('--json')) {
    const error = { code: 'CANCELLED', category: 'cancelled', message, hint };
    process.stdout.write(`${JSON.stringify({ error }, null, 2)}\n`);
  } else {
    process.stderr.write(`error: ${message}\n  ${hint}\n`);
  }
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
