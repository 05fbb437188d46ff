/** Parsing of `WWW-Authenticate` challenges (RFC 7235) as registries send them, and token scopes. */

import type { ImageReference } from './reference.js';

export type AuthChallenge =
  | { readonly scheme: 'basic'; readonly realm?: string | undefined }
  | {
      readonly scheme: 'bearer';
      readonly realm: string;
      readonly service?: string | undefined;
      /** Space-separated in the header; several when a mount needs two repositories. */
      readonly scopes: readonly string[];
    };

const PARAM = /([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]*))/y;

/** Reads the first Basic or Bearer challenge of a header; undefined when there is none we understand. */
export function parseAuthChallenge(header: string | undefined): AuthChallenge | undefined {
  if (header === undefined) return undefined;
  let text = header.trim();
  // A header may hold several challenges ("Bearer …, Basic …"); try each scheme occurrence in order.
  for (;;) {
    const match = /^([A-Za-z][A-Za-z0-9_-]*)\s*/.exec(text);
    if (match === null) return undefined;
    const scheme = (match[1] ?? '').toLowerCase();
    const params: Record<string, string> = {};
    let position = match[0].length;
    for (;;) {
      PARAM.lastIndex = position;
      const param = PARAM.exec(text);
      if (param === null) break;
      params[(param[1] ?? '').toLowerCase()] =
        param[2] === undefined ? (param[3] ?? '') : param[2].replace(/\\(.)/g, '$1');
      position = PARAM.lastIndex;
      const separator = /^\s*,\s*/.exec(text.slice(position));
      if (separator === null) break;
      position += separator[0].length;
    }
    if (scheme === 'bearer' && params.realm !== undefined && params.realm !== '') {
      return {
        scheme: 'bearer',
        realm: params.realm,
        service: params.service,
        scopes: (params.scope ?? '').split(' ').filter((s) => s !== ''),
      };
    }
    if (scheme === 'basic') return { scheme: 'basic', realm: params.realm };
    const rest = text.slice(position);
    if (rest === text || rest.trim() === '') return undefined;
    text = rest.trim();
  }
}

/** A repository scope for the token server. */
export function repositoryScope(repository: string, actions: 'pull' | 'pull,push'): string {
  return `repository:${repository}:${actions}`;
}

export function pullScope(ref: ImageReference): string {
  return repositoryScope(ref.repository, 'pull');
}

/** Every request of a push asks for the same scope, so one token serves the whole push. */
export function pushScope(ref: ImageReference): string {
  return repositoryScope(ref.repository, 'pull,push');
}
