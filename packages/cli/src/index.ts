export { run } from './run.js';
export type { CliIo } from './output.js';
export { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, EXIT_VERIFICATION, exitCodeFor } from './exit-codes.js';
