import { AirgapError, fileSystemError } from '@trivy-airgap/format';
import yargs from 'yargs';
import { exportCommand } from './commands/export.js';
import { importCommand } from './commands/import.js';
import { inspectCommand } from './commands/inspect.js';
import { keygenCommand } from './commands/keygen.js';
import { rollbackCommand } from './commands/rollback.js';
import { statusCommand } from './commands/status.js';
import { verifyCommand } from './commands/verify.js';
import type { CommandContext } from './context.js';
import { CliError, ReportedFailure, UsageError } from './errors.js';
import { EXIT_OK, exitCodeFor } from './exit-codes.js';
import { examplesSection } from './help.js';
import { Output, type CliIo } from './output.js';
import { TOOL_NAME, toolVersion } from './version.js';

/**
 * Runs one command line and returns the exit code. The only place that catches errors:
 * each becomes one line (what went wrong, what to do) or, with --json, one JSON document.
 */
export async function run(argv: readonly string[], io: CliIo): Promise<number> {
  const out = outputFor(argv, io);
  const version = toolVersion();
  const context: CommandContext = { io, out, toolVersion: version };

  const parser = yargs([...argv])
    .scriptName(TOOL_NAME)
    .usage(
      '$0 <command> [options]\n\nCarry Trivy offline content across an air gap: signed, verified, atomic.',
    )
    .version(version)
    .option('json', { type: 'boolean', default: false, describe: 'one JSON document on stdout' })
    .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'no progress or notes' })
    .option('debug', { type: 'boolean', default: false, describe: 'show stacks and causes of errors' })
    .command(keygenCommand(context))
    .command(exportCommand(context))
    .command(verifyCommand(context))
    .command(inspectCommand(context))
    .command(importCommand(context))
    .command(statusCommand(context))
    .command(rollbackCommand(context))
    .demandCommand(1, 'Name a command (see --help).')
    .recommendCommands()
    .showHelpOnFail(false)
    .strict()
    .help()
    .alias('help', 'h')
    .wrap(
      Math.min(110, io.stdout.isTTY === true ? ((io.stdout as { columns?: number }).columns ?? 110) : 110),
    )
    .exitProcess(false)
    // Flags are only known by their kebab-case names: an unknown-flag error then names what was
    // typed (`cache-dri`), without a camelCase twin (`cacheDri`) nobody typed.
    .parserConfiguration({ 'camel-case-expansion': false })
    .fail((message: string | undefined, error: Error | undefined) => {
      // yargs' own complaints (a flag without its value, …) arrive as a YError: a usage error.
      if (error === undefined || error.name === 'YError') {
        throw usageErrorInWords(message ?? error?.message ?? 'invalid command line', argv);
      }
      throw error;
    });

  if (!argv.some((word) => HELP_WORDS.has(word))) skipHelpCaching(parser);

  try {
    // yargs hands its own output (--help, --version) to this callback instead of console.log, so
    // that it goes to io.stdout like everything else run() prints (run in process, too).
    const parsed = await parser.parseAsync([...argv], {}, (_error, _parsed, output: string) => {
      if (output !== '') io.stdout.write(`${output}\n`);
    });
    if (parsed.help === true) {
      const command = typeof parsed._[0] === 'string' ? parsed._[0] : '';
      for (const line of examplesSection(command, TOOL_NAME)) io.stdout.write(`${line}\n`);
    }
    return EXIT_OK;
  } catch (caught) {
    // Last line of defence: a file-system error the user's environment causes (read-only or full
    // disk, permissions, a wrong path) that no library mapped at its boundary is still reported
    // as what it is, never as a bug.
    const error = fileSystemError(caught) ?? caught;
    if (!(error instanceof ReportedFailure)) reportError(out, error);
    return exitCodeFor(error);
  }
}

const HELP_WORDS = new Set(['--help', '-h', 'help']);

/**
 * yargs renders a command's whole help text (cliui tables, wrap-ansi, Unicode string widths)
 * every time the command runs, in case the running command asks for it later: 20-60 ms of
 * start-up on every export, import and verify. Nothing here ever asks (help is printed only for
 * --help, never on failure: showHelpOnFail(false)), so unless help is wanted the caching is a
 * no-op. The hook is yargs-internal; without it (another yargs) the help is rendered as before.
 */
function skipHelpCaching(parser: unknown): void {
  const usage = (
    parser as { getInternalMethods?: () => { getUsageInstance?: () => { cacheHelpMessage?: unknown } } }
  )
    .getInternalMethods?.()
    .getUsageInstance?.();
  if (usage !== undefined && typeof usage.cacheHelpMessage === 'function') {
    usage.cacheHelpMessage = () => undefined;
  }
}

/**
 * yargs' complaints in the user's words where its own are parser jargon: a flag typed without its
 * value (`verify B --trust`), a command typed without its bundle (`verify --trust K`, where the
 * bundle is what the user left out or what --trust took as its value).
 */
function usageErrorInWords(message: string, argv: readonly string[]): UsageError {
  const flag = /^Not enough arguments following: (\S+)$/.exec(message)?.[1];
  if (flag !== undefined) {
    return new UsageError(
      `--${flag} needs a value`,
      flag === 'trust'
        ? 'give a public key file, e.g. --trust signing.pub (repeat the flag for several keys)'
        : 'see --help',
    );
  }
  if (message.startsWith('Not enough non-option arguments')) {
    const command = commandWord(argv);
    const example = `${TOOL_NAME} ${command} trivy-bundle.tgz${command === 'inspect' ? '' : ' --trust signing.pub'}`;
    return new UsageError(
      `${command} needs the bundle: a .tgz file, its first split part (.part-000), or - for standard input`,
      argv.includes('--trust') ? `e.g. ${example} (--trust takes exactly one key file)` : `e.g. ${example}`,
    );
  }
  return new UsageError(message, 'see --help');
}

/** Known before parsing, so that even a usage error is reported in the requested form. */
function outputFor(argv: readonly string[], io: CliIo): Output {
  return new Output(io, {
    json: argv.includes('--json'),
    quiet: argv.includes('--quiet') || argv.includes('-q'),
    debug: argv.includes('--debug'),
  });
}

/** The command a command line names (its first word that is not a flag), or ''. */
function commandWord(argv: readonly string[]): string {
  return argv.find((word) => !word.startsWith('-')) ?? '';
}

/**
 * A signal that ends the run at once (outside cancellable work, or a second one): reported as
 * run() reports any error — CANCELLED, one line or the JSON error object. Returns the exit code.
 */
export function reportSignal(argv: readonly string[], io: CliIo, signal: NodeJS.Signals): number {
  const error = new CliError('CANCELLED', `${commandWord(argv) || TOOL_NAME} cancelled by ${signal}`, {
    hint: 'nothing is left half-done: an interrupted import or rollback is finished by the next run',
  });
  reportError(outputFor(argv, io), error);
  return exitCodeFor(error);
}

function reportError(out: Output, error: unknown): void {
  const known = error instanceof AirgapError ? (error as AirgapError) : undefined;
  const message = error instanceof Error ? error.message : String(error);
  const hint = known?.hint;
  if (out.json) {
    const fields = known === undefined ? { code: 'INTERNAL' } : jsonFields(known);
    out.io.stdout.write(`${JSON.stringify({ error: { ...fields, message, hint } }, null, 2)}\n`);
  } else {
    out.io.stderr.write(`${out.paint('31', 'error:')} ${message}\n`);
    if (hint !== undefined) out.io.stderr.write(`  ${hint}\n`);
  }
  if (out.debug) {
    let current: unknown = error;
    while (current instanceof Error) {
      out.io.stderr.write(`${current.stack ?? current.message}\n`);
      current = current.cause;
      if (current !== undefined) out.io.stderr.write('caused by: ');
    }
  } else if (known === undefined) {
    out.io.stderr.write('  this is a bug in trivy-airgap; run again with --debug and report the output\n');
  }
}

/** What a machine reading --json needs to act on an error (undefined fields are left out by JSON). */
function jsonFields(error: AirgapError) {
  const { code, category, path, subject, expected, found } = error;
  return { code, category, path, subject, expected, found };
}
