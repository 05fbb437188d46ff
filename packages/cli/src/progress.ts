import { formatBytes, type ProgressEvent, type ProgressListener } from '@trivy-airgap/format';
import ora, { type Ora } from 'ora';
import type { Output } from './output.js';

export { formatBytes };

/** 3 d, 5 h, 12 min, 40 s. */
export function formatDuration(ms: number): string {
  const seconds = Math.max(0, Math.round(ms / 1000));
  if (seconds < 90) return `${seconds} s`;
  if (seconds < 90 * 60) return `${Math.round(seconds / 60)} min`;
  if (seconds < 48 * 3600) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86400)} d`;
}

/** How old a dated thing is (`3h old`), or nothing without a date. */
export function age(updatedAt: string | undefined, now = Date.now()): string {
  if (updatedAt === undefined) return '';
  return `${formatDuration(now - Date.parse(updatedAt))} old`;
}

interface TaskState {
  label: string;
  total: number | undefined;
  done: number;
  started: number;
  /** When `done` last grew. */
  lastChange: number;
  /** Recent (time, done) points, for a rate that follows the current speed. */
  samples: { at: number; done: number }[];
  /** The progress part of its line, once there is progress to show. */
  detail: string | undefined;
  drawnProgress: boolean;
}

/** The rate is measured over this window; no new byte for STALLED_MS says so instead of a rate. */
const RATE_WINDOW_MS = 5000;
const STALLED_MS = 5000;
const REFRESH_MS = 1000;

/**
 * Renders library progress events. On a TTY (and without --quiet/--json/NO_COLOR) ONE ora spinner
 * shows every running task as a line of its text (tasks may run at the same time), with bytes
 * done/total, percent, rate and ETA; a finished task becomes a persistent ✔/✗ line above it.
 * Otherwise only the final summary line of each task is written, as plain text without escape codes.
 */
export class ProgressRenderer {
  private readonly tasks = new Map<string, TaskState>();
  private spinner: Ora | undefined;
  private refresh: NodeJS.Timeout | undefined;

  constructor(
    private readonly out: Output,
    private readonly now: () => number = Date.now,
  ) {}

  readonly listener: ProgressListener = (event: ProgressEvent) => this.handle(event);

  private handle(event: ProgressEvent): void {
    switch (event.type) {
      case 'task-start': {
        const now = this.now();
        this.tasks.set(event.task, {
          label: event.label,
          total: event.total,
          done: 0,
          started: now,
          lastChange: now,
          samples: [{ at: now, done: 0 }],
          detail: undefined,
          drawnProgress: false,
        });
        this.redraw();
        break;
      }
      case 'task-progress': {
        const task = this.tasks.get(event.task);
        if (task === undefined) return;
        const now = this.now();
        if (event.done !== task.done) {
          task.lastChange = now;
          task.samples.push({ at: now, done: event.done });
          // Keep one point older than the window, so the window is always covered.
          while (task.samples.length > 2 && now - (task.samples[1]?.at ?? now) > RATE_WINDOW_MS)
            task.samples.shift();
        }
        task.done = event.done;
        if (event.total !== undefined) task.total = event.total;
        if (this.out.interactive) {
          task.detail = this.describeProgress(task);
          this.redraw();
          // ora redraws on its own timer; draw the first progress at once so short tasks show it too.
          if (!task.drawnProgress) {
            this.spinner?.render();
            task.drawnProgress = true;
          }
        }
        break;
      }
      case 'task-done': {
        const task = this.tasks.get(event.task);
        this.finish(event.task, `${task?.label ?? event.task}  ${event.summary}`);
        break;
      }
      case 'task-fail':
        // Every library that fails a task then throws, and the CLI prints that error as its one
        // line: a ✗ line here would say the same thing twice, under whatever task happened to be
        // running (a downgrade refused during the bundle read is no "verify" failure).
        this.drop(event.task);
        break;
      case 'warning':
        this.out.warn(event.message);
        break;
      case 'note':
        this.out.note(event.message);
        break;
    }
  }

  /** The spinner text: one line per running task. */
  private text(): string {
    return [...this.tasks.values()]
      .map((task) => (task.detail === undefined ? task.label : `${task.label}  ${task.detail}`))
      .join('\n');
  }

  /** Starts, updates or (with no task left) leaves alone the one spinner. */
  private redraw(): void {
    if (!this.out.interactive || this.tasks.size === 0) return;
    if (this.spinner === undefined) {
      this.spinner = ora({ text: this.text(), stream: this.out.io.stderr, isEnabled: true }).start();
      this.startRefresh();
    } else {
      this.spinner.text = this.text();
    }
  }

  /** A task ended: its summary line stays on screen, the spinner goes on with the others. */
  private finish(id: string, line: string): void {
    const known = this.tasks.delete(id);
    const spinner = this.spinner;
    if (spinner === undefined || !known) {
      this.out.note(`✓ ${line}`);
      return;
    }
    spinner.succeed(line);
    if (this.tasks.size === 0) this.stopSpinner();
    else spinner.start(this.text());
  }

  /** A task failed: its line goes away without a trace (the error is reported once, by run()). */
  private drop(id: string): void {
    if (!this.tasks.delete(id)) return;
    if (this.tasks.size > 0) {
      this.spinner?.start(this.text());
      return;
    }
    this.spinner?.stop(); // clears its line
    this.stopSpinner();
  }

  private describeProgress(task: TaskState): string {
    const now = this.now();
    const parts = [
      task.total === undefined
        ? formatBytes(task.done)
        : `${formatBytes(task.done)} / ${formatBytes(task.total)}`,
    ];
    if (task.total !== undefined && task.total > 0) {
      parts.push(`${Math.floor((task.done / task.total) * 100)}%`);
    }
    if (now - task.lastChange >= STALLED_MS) {
      // A stalled pipe shows that it stalled, not the last rate and a made-up ETA.
      parts.push(`no data for ${formatDuration(now - task.lastChange)}`);
      return parts.join('  ');
    }
    const from = task.samples[0] ?? { at: task.started, done: 0 };
    const rate = ((task.done - from.done) / Math.max(1, now - from.at)) * 1000;
    parts.push(`${formatBytes(rate)}/s`);
    if (task.total !== undefined && rate > 0 && task.done < task.total) {
      const eta = ((task.total - task.done) / rate) * 1000;
      if (eta >= 1000) parts.push(`ETA ${formatDuration(eta)}`);
    }
    return parts.join('  ');
  }

  /** Redraws running tasks every second, so a stall shows even when no event comes. */
  private startRefresh(): void {
    if (this.refresh !== undefined) return;
    this.refresh = setInterval(() => {
      for (const task of this.tasks.values()) {
        if (task.drawnProgress) task.detail = this.describeProgress(task);
      }
      this.redraw();
    }, REFRESH_MS);
    this.refresh.unref();
  }

  private stopSpinner(): void {
    if (this.refresh !== undefined) clearInterval(this.refresh);
    this.refresh = undefined;
    this.spinner = undefined;
  }

  /** Stops any spinner still running (on errors), so the terminal is left clean. */
  stop(): void {
    this.spinner?.stop();
    this.stopSpinner();
    this.tasks.clear();
  }
}
