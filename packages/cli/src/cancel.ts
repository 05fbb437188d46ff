import type { CommandContext } from './context.js';
import { CliError } from './errors.js';

/**
 * Ctrl-C (SIGINT) and SIGTERM. While a command that can stop cleanly runs its work through
 * `cancellable` (import, verify, publish, export), the first signal aborts that work: the library
 * removes what it staged and releases its lock, and the command ends with CANCELLED, whose
 * category (`cancelled`) exits 130 like every cancelled command. At any other moment, or on a
 * second signal, the process ends at once with 130: nothing is half-written then that the next run
 * does not finish or clean (imports and rollbacks journal their commit; locks of dead processes are
 * taken over).
 */
export class Cancellation {
  private running: AbortController | undefined;

  constructor(private readonly exitNow: (signal: NodeJS.Signals) => void) {}

  /** Wires the process signals to this object. */
  listen(process: NodeJS.Process): void {
    for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => this.receive(signal));
  }

  receive(signal: NodeJS.Signals): void {
    const running = this.running;
    if (running === undefined || running.signal.aborted) {
      this.exitNow(signal);
      return;
    }
    running.abort(signal);
  }

  /** An AbortSignal for one piece of cancellable work; `done` hands the signals back. */
  begin(): { signal: AbortSignal; done: () => void } {
    const controller = new AbortController();
    this.running = controller;
    return {
      signal: controller.signal,
      done: () => {
        if (this.running === controller) this.running = undefined;
      },
    };
  }
}

/**
 * Runs `work` with a signal that Ctrl-C/SIGTERM aborts. A run that ends because of that becomes
 * one line, `<what> cancelled; <outcome>` (code CANCELLED, exit 130), whatever error the
 * interrupted library raised on its way out.
 */
export async function cancellable<T>(
  context: CommandContext,
  what: string,
  outcome: string,
  work: (signal: AbortSignal | undefined) => Promise<T>,
): Promise<T> {
  const handle = context.io.cancellation?.begin();
  try {
    return await work(handle?.signal);
  } catch (error) {
    if (handle?.signal.aborted === true) {
      throw new CliError('CANCELLED', `${what} cancelled; ${outcome}`, { cause: error });
    }
    throw error;
  } finally {
    handle?.done();
  }
}
