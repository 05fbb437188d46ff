/** Short human forms for progress summaries (the library's one-line `task-done` texts). */

/** 1.4 GiB, 730 MiB, 12 KiB, 512 B. */
export function humanBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(value >= 100 ? 0 : 1)} ${units[unit] ?? ''}`;
}

/** `, built 5 h ago` from an upstream timestamp; empty when there is none. */
export function builtAgo(timestamp: string | undefined, now = Date.now()): string {
  if (timestamp === undefined) return '';
  const hours = (now - Date.parse(timestamp)) / 3_600_000;
  if (!Number.isFinite(hours)) return '';
  return hours < 48
    ? `, built ${Math.max(0, Math.round(hours))} h ago`
    : `, built ${Math.round(hours / 24)} d ago`;
}
