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

interface TaskState {
  label: string;
  total: number | undefined;
  done: number;
  started: number;
  /** The progress part of its line, once there is progress to show. */
  detail: string | undefined;
  drawnProgress: boolean;
}

/**
 * Renders library progress events. On a TTY (and without --quiet/--json/NO_COLOR) ONE ora spinner
 * shows every running task as a line of its text (tasks may run at the same time), with bytes
 * done/total, percent, rate and ETA; a finished task becomes a persistent ✔/✗ line above it.
 * Otherwise only the final summary line of each task is written, as plain text without escape codes.
 */
export class ProgressRenderer {
  private readonly tasks = new Map<string, TaskState>();
  private spinner: Ora | undefined;

  constructor(
    private readonly out: Output,
    private readonly now: () => number = Date.now,
  ) {}

  readonly listener: ProgressListener = (event: ProgressEvent) => this.handle(event);

  private handle(event: ProgressEvent): void {
    switch (event.type) {
      case 'task-start': {
        this.tasks.set(event.task, {
          label: event.label,
          total: event.total,
          done: 0,
          started: this.now(),
          detail: undefined,
          drawnProgress: false,
        });
        this.redraw();
        break;
      }
      case 'task-progress': {
        const task = this.tasks.get(event.task);
        if (task === undefined) return;
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
        this.finish(event.task, 'succeed', `${task?.label ?? event.task}  ${event.summary}`);
        break;
      }
      case 'task-fail': {
        const task = this.tasks.get(event.task);
        this.finish(event.task, 'fail', `${task?.label ?? event.task}  ${event.reason}`);
        break;
      }
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
    } else {
      this.spinner.text = this.text();
    }
  }

  /** A task ended: its summary line stays on screen, the spinner goes on with the others. */
  private finish(id: string, how: 'succeed' | 'fail', line: string): void {
    const known = this.tasks.delete(id);
    const spinner = this.spinner;
    if (spinner === undefined || !known) {
      this.out.note(`${how === 'succeed' ? '✓' : '✗'} ${line}`);
      return;
    }
    if (how === 'succeed') spinner.succeed(line);
    else spinner.fail(line);
    if (this.tasks.size === 0) this.spinner = undefined;
    else spinner.start(this.text());
  }

  private describeProgress(task: TaskState): string {
    const elapsed = Math.max(1, this.now() - task.started);
    const rate = (task.done / elapsed) * 1000;
    const parts = [
      task.total === undefined
        ? formatBytes(task.done)
        : `${formatBytes(task.done)} / ${formatBytes(task.total)}`,
    ];
    if (task.total !== undefined && task.total > 0) {
      parts.push(`${Math.floor((task.done / task.total) * 100)}%`);
    }
    parts.push(`${formatBytes(rate)}/s`);
    if (task.total !== undefined && rate > 0 && task.done < task.total) {
      parts.push(`ETA ${formatDuration(((task.total - task.done) / rate) * 1000)}`);
    }
    return parts.join('  ');
  }

  /** Stops any spinner still running (on errors), so the terminal is left clean. */
  stop(): void {
    this.spinner?.stop();
    this.spinner = undefined;
    this.tasks.clear();
  }
}
