export { run } from './run.js';
export type { CliIo } from './output.js';
export {
  EXIT_CODE_OF_CATEGORY,
  EXIT_FAILURE,
  EXIT_OK,
  EXIT_USAGE,
  EXIT_VERIFICATION,
  exitCodeFor,
} from './exit-codes.js';
export { CLI_ERROR_CODES, CliError, type CliErrorCode } from './errors.js';
