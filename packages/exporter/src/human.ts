/** Short human forms for progress summaries (the library's one-line `task-done` texts). */

/** `, built 5 h ago` from an upstream timestamp; empty when there is none. */
export function builtAgo(timestamp: string | undefined, now = Date.now()): string {
  if (timestamp === undefined) return '';
  const hours = (now - Date.parse(timestamp)) / 3_600_000;
  if (!Number.isFinite(hours)) return '';
  return hours < 48
    ? `, built ${Math.max(0, Math.round(hours))} h ago`
    : `, built ${Math.round(hours / 24)} d ago`;
}
