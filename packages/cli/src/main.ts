#!/usr/bin/env node
import { stopWritingWhenClosed } from './output.js';
import { run } from './run.js';

stopWritingWhenClosed(process.stdout);
stopWritingWhenClosed(process.stderr);

const code = await run(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  cwd: process.cwd(),
});
process.exitCode = code;
