import { readFileSync } from 'node:fs';

declare const __TRIVY_AIRGAP_VERSION__: string | undefined;

/** The tool version: injected by the single-file build, else read from the cli package.json. */
export function toolVersion(): string {
  if (typeof __TRIVY_AIRGAP_VERSION__ === 'string') return __TRIVY_AIRGAP_VERSION__;
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

export const TOOL_NAME = 'trivy-airgap';
