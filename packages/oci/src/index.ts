// The public surface of @trivy-airgap/oci: what the other packages and the CLI use (README.md).
// Everything else stays inside; tests reach internals through their own module paths.

export { OCI_ERROR_CODES, OciError, redactUrl, type IntegritySide, type OciErrorCode } from './errors.js';
export type { CredentialSource, OciEvent, OciEventListener } from './events.js';
export { formatReference, parseReference, type ImageReference } from './reference.js';
export {
  INDEX_MEDIA_TYPES,
  parseImageManifest,
  type Descriptor,
  type ImageManifest,
  type Platform,
} from './manifest.js';
export {
  createHttpClient,
  type HttpClient,
  type HttpRequestOptions,
  type HttpResponse,
  type RetryOptions,
  type TransportOptions,
} from './transport.js';
export type { CredentialOptions } from './credentials.js';
export {
  RegistryClient,
  type DownloadBlobOptions,
  type DownloadBlobResult,
  type GetManifestOptions,
  type ManifestResult,
  type PendingBlobDownload,
  type PushBlobOptions,
  type PushBlobResult,
  type PushManifestResult,
  type RegistryClientOptions,
} from './registry-client.js';
export { OciLayout, type LayoutRef, type WriteBlobOptions } from './layout.js';
export {
  pullToLayout,
  pushFromLayout,
  type PulledArtifact,
  type PullToLayoutOptions,
  type PushFromLayoutOptions,
} from './copy.js';
