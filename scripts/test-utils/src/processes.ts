import { spawn, type ChildProcess } from 'node:child_process';

/** How a child process ended and what it printed. */
export interface ProcessRun {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** What a child process printed and how it ended, once it closed its pipes. */
export function collect(child: ChildProcess): Promise<ProcessRun> {
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

export interface RunProcessOptions {
  readonly cwd: string;
  readonly env: NodeJS.ProcessEnv;
  /** Written to its standard input, which is then closed (default: no standard input). */
  readonly input?: Buffer | string;
  /** SIGKILL after this long (a crash test's kill, or a hung process's limit). */
  readonly killAfterMs?: number;
}

/**
 * Runs a program asynchronously (never spawnSync: the registries and servers a test starts live
 * in the test's own event loop and must keep answering).
 */
export async function runProcess(
  program: string,
  args: readonly string[],
  options: RunProcessOptions,
): Promise<ProcessRun> {
  const child = spawn(program, args, {
    cwd: options.cwd,
    env: options.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const timer =
    options.killAfterMs === undefined
      ? undefined
      : setTimeout(() => child.kill('SIGKILL'), options.killAfterMs);
  try {
    return await collect(child);
  } finally {
    clearTimeout(timer);
  }
}

/** Runs a Node program (the CLI, a built variant of it) with this Node. */
export function runNode(
  program: string,
  args: readonly string[],
  options: RunProcessOptions,
): Promise<ProcessRun> {
  return runProcess(process.execPath, [program, ...args], options);
}
