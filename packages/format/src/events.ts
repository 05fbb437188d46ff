/**
 * Progress and warnings that libraries report while they work. Libraries never print: they call
 * a listener with these events, and only the CLI turns them into spinners or lines.
 */
export type ProgressEvent =
  /** A unit of work (a component, a file) begins; `total` bytes when known. */
  | { readonly type: 'task-start'; readonly task: string; readonly label: string; readonly total?: number }
  /** Bytes done so far for a task (monotonic). */
  | { readonly type: 'task-progress'; readonly task: string; readonly done: number; readonly total?: number }
  /** The task finished; `summary` is one short human line (size, short digest, age). */
  | { readonly type: 'task-done'; readonly task: string; readonly summary: string }
  /** The task failed but the overall job may go on (e.g. a mirror fell back to the next one). */
  | { readonly type: 'task-fail'; readonly task: string; readonly reason: string }
  /** Something the user should know that is not an error. */
  | { readonly type: 'warning'; readonly message: string }
  /** A plain informational note. */
  | { readonly type: 'note'; readonly message: string };

export type ProgressListener = (event: ProgressEvent) => void;

/** A listener that drops everything: the default when the caller does not care. */
export const ignoreProgress: ProgressListener = () => undefined;

/** Human sizes in binary units for progress lines: 1.4 GiB, 730 MiB, 12 KiB, 512 B. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'] as const;
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(value >= 100 ? 0 : 1)} ${units[unit] ?? ''}`;
}
