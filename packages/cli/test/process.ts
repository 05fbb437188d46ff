import { spawnSync } from 'node:child_process';
import { collect, runProcess, type ProcessRun } from '@trivy-airgap/test-utils';
import { fileURLToPath } from 'node:url';

/**
 * Runs the built CLI the way a user does: a child process with its own argv, working directory,
 * environment, pipes, terminal (script(1)) or shell pipeline. Shared by the process-level tests.
 */
export const CLI = fileURLToPath(new URL('../src/main.js', import.meta.url));
export const SINGLE_FILE = fileURLToPath(new URL('../trivy-airgap.mjs', import.meta.url));

export type Run = ProcessRun;

export interface RunOptions {
  readonly cwd: string;
  readonly env: NodeJS.ProcessEnv;
  readonly input?: Buffer | string;
}

/** A clean environment: HOME and XDG dirs under `home`, no colours unless a test asks. */
export function userEnv(home: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: home,
    XDG_DATA_HOME: `${home}/data`,
    XDG_CONFIG_HOME: `${home}/config`,
    XDG_CACHE_HOME: `${home}/cache`,
    NO_COLOR: '1',
    ...extra,
  };
}

/** The CLI, synchronously (for tests that need no server in this process). */
export function cliSync(args: readonly string[], options: RunOptions): Run {
  const result = spawnSync(process.execPath, [CLI, ...args], {
    cwd: options.cwd,
    env: options.env,
    encoding: 'utf8',
    timeout: 60_000,
    ...(options.input === undefined ? {} : { input: options.input }),
  });
  return { code: result.status, signal: result.signal, stdout: result.stdout, stderr: result.stderr };
}

export { collect };

/** Any program, asynchronously (a loopback server in this process must keep answering). */
export function runProgram(file: string, args: readonly string[], options: RunOptions): Promise<Run> {
  return runProcess(file, args, options);
}

/** The CLI, asynchronously. */
export function cli(args: readonly string[], options: RunOptions & { program?: string }): Promise<Run> {
  return runProgram(process.execPath, [options.program ?? CLI, ...args], options);
}

/** Quotes one word for a POSIX shell. */
export function sh(word: string): string {
  return `'${word.replaceAll("'", "'\\''")}'`;
}

/** The CLI invocation as a shell command (for pipelines and script(1)). */
export function cliCommand(args: readonly string[]): string {
  return [process.execPath, CLI, ...args].map(sh).join(' ');
}

/** A shell command line (bash, so PIPESTATUS is there), run like a user's terminal would. */
export function shell(command: string, options: RunOptions): Run {
  const result = spawnSync('bash', ['-c', command], {
    cwd: options.cwd,
    env: options.env,
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { code: result.status, signal: result.signal, stdout: result.stdout, stderr: result.stderr };
}

/**
 * A command on a pseudo-terminal (script(1)); stty gives it a size. stdout and stderr arrive
 * merged in `stdout`, as a terminal shows them.
 */
export function onTerminal(command: string, options: RunOptions & { columns?: number }): Run {
  const result = spawnSync(
    'script',
    ['-q', '-e', '-c', `stty cols ${options.columns ?? 120} rows 40; ${command}`, '/dev/null'],
    {
      cwd: options.cwd,
      env: { TERM: 'xterm-256color', ...options.env },
      encoding: 'utf8',
      timeout: 60_000,
      maxBuffer: 64 * 1024 * 1024,
    },
  );
  return { code: result.status, signal: result.signal, stdout: result.stdout, stderr: result.stderr };
}
