import type { Digest } from '@trivy-airgap/format';

/**
 * What the OCI client reports while it works. Libraries never print: the CLI turns these into
 * progress lines or debug logs. URLs are redacted (no query string) and no event carries credentials.
 */
export type OciEvent =
  | {
      readonly type: 'retry';
      readonly url: string;
      readonly attempt: number;
      readonly delayMs: number;
      readonly reason: string;
    }
  | { readonly type: 'redirect'; readonly from: string; readonly to: string }
  | {
      readonly type: 'auth';
      readonly registry: string;
      readonly scheme: 'basic' | 'bearer';
      readonly scope?: string | undefined;
    }
  | { readonly type: 'credentials'; readonly registry: string; readonly source: CredentialSource }
  | { readonly type: 'resume'; readonly digest: Digest; readonly offset: number }
  | { readonly type: 'range-ignored'; readonly digest: Digest; readonly offset: number }
  | { readonly type: 'blob-exists'; readonly repository: string; readonly digest: Digest }
  | {
      readonly type: 'blob-mounted';
      readonly repository: string;
      readonly digest: Digest;
      readonly from: string;
    }
  | {
      readonly type: 'blob-uploaded';
      readonly repository: string;
      readonly digest: Digest;
      readonly size: number;
    }
  | {
      readonly type: 'manifest-exists';
      readonly repository: string;
      readonly digest: Digest;
      readonly tag?: string | undefined;
    }
  | {
      readonly type: 'manifest-pushed';
      readonly repository: string;
      readonly digest: Digest;
      readonly tag?: string | undefined;
    };

export type OciEventListener = (event: OciEvent) => void;

/** Where the credentials for a registry came from (never the credentials themselves). */
export type CredentialSource =
  'explicit' | 'registry-token' | 'docker-config' | 'credential-helper' | 'github-token' | 'anonymous';
