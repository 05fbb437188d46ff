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
  spinner: Ora | undefined;
  drawnProgress: boolean;
}

/**
 * Renders library progress events. On a TTY (and without --quiet/--json/NO_COLOR) each task gets
 * an ora spinner with bytes done/total, percent, rate and ETA; otherwise only the final summary
 * line of each task is written, as plain text without escape codes.
 */
export class ProgressRenderer {
  private readonly tasks = new Map<string, TaskState>();

  constructor(
    private readonly out: Output,
    private readonly now: () => number = Date.now,
  ) {}

  readonly listener: ProgressListener = (event: ProgressEvent) => this.handle(event);

  private handle(event: ProgressEvent): void {
    switch (event.type) {
      case 'task-start': {
        const task: TaskState = {
          label: event.label,
          total: event.total,
          done: 0,
          started: this.now(),
          spinner: undefined,
          drawnProgress: false,
        };
        if (this.out.interactive) {
          task.spinner = ora({ text: event.label, stream: this.out.io.stderr, isEnabled: true }).start();
        }
        this.tasks.set(event.task, task);
        break;
      }
      case 'task-progress': {
        const task = this.tasks.get(event.task);
        if (task === undefined) return;
        task.done = event.done;
        if (event.total !== undefined) task.total = event.total;
        if (task.spinner !== undefined) {
          task.spinner.text = `${task.label}  ${this.describeProgress(task)}`;
          // ora redraws on its own timer; draw the first progress at once so short tasks show it too.
          if (!task.drawnProgress) {
            task.spinner.render();
            task.drawnProgress = true;
          }
        }
        break;
      }
      case 'task-done': {
        const task = this.tasks.get(event.task);
        const line = `${task?.label ?? event.task}  ${event.summary}`;
        if (task?.spinner !== undefined) task.spinner.succeed(line);
        else this.out.note(`✓ ${line}`);
        this.tasks.delete(event.task);
        break;
      }
      case 'task-fail': {
        const task = this.tasks.get(event.task);
        const line = `${task?.label ?? event.task}  ${event.reason}`;
        if (task?.spinner !== undefined) task.spinner.fail(line);
        else this.out.note(`✗ ${line}`);
        this.tasks.delete(event.task);
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
    for (const task of this.tasks.values()) task.spinner?.stop();
    this.tasks.clear();
  }
}
