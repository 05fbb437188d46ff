#!/usr/bin/env node
import { setFlagsFromString } from 'node:v8';
import { Cancellation } from './cancel.js';
import { stopWritingWhenClosed } from './output.js';
import { reportSignal, run } from './run.js';

// Full garbage collections in one pause instead of incremental marking. Streaming a bundle makes
// ~1 GB of short-lived buffers outside the heap; with the CLI's ~12 MB heap loaded, V8's
// incremental marking then restarted every ~20 ms for the whole run (~60 full collections per
// import of Trivy-shaped data, ~0.7 s of CPU). Without it: 2-4 collections, import CPU 3.2 s →
// 2.1 s, peak RSS +15-20 MiB (measured; load ~5 on 2 cores). V8 reads this flag whenever it
// decides to start marking, so setting it here, before any work, applies to the whole run.
setFlagsFromString('--no-incremental-marking');

stopWritingWhenClosed(process.stdout);
stopWritingWhenClosed(process.stderr);

const io = { stdout: process.stdout, stderr: process.stderr, env: process.env, cwd: process.cwd() };
const argv = process.argv.slice(2);

// Outside cancellable work (or on a second signal) a signal ends the run at once, as cancelled,
// reported like any other error.
const cancellation = new Cancellation((signal) => process.exit(reportSignal(argv, io, signal)));
cancellation.listen(process);

const code = await run(argv, { ...io, cancellation });
process.exitCode = code;
