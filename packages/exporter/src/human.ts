/** Short human forms for progress summaries (the library's one-line `task-done` texts). */

/** `, published 5 h ago` from an upstream timestamp; empty when there is none. */
export function happenedAgo(verb: string, timestamp: string | undefined, now = Date.now()): string {
  if (timestamp === undefined) return '';
  const hours = (now - Date.parse(timestamp)) / 3_600_000;
  if (!Number.isFinite(hours)) return '';
  return hours < 48
    ? `, ${verb} ${Math.max(0, Math.round(hours))} h ago`
    : `, ${verb} ${Math.round(hours / 24)} d ago`;
}
