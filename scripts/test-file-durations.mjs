// A node:test reporter: the time each test file's top-level tests took, as JSON lines
// `{"file": …, "ms": …}` (scripts/run-tests.mjs prints the slowest with TRIVY_AIRGAP_TIMINGS=1).
export default async function* fileDurations(source) {
  const perFile = new Map();
  for await (const event of source) {
    if ((event.type === 'test:pass' || event.type === 'test:fail') && event.data.nesting === 0) {
      const file = event.data.file ?? '?';
      perFile.set(file, (perFile.get(file) ?? 0) + (event.data.details?.duration_ms ?? 0));
    }
  }
  for (const [file, ms] of perFile) yield `${JSON.stringify({ file, ms: Math.round(ms) })}\n`;
}
