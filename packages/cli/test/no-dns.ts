import dns from 'node:dns';

/**
 * Preloaded into a CLI child (NODE_OPTIONS=--import …/no-dns.js) to play a machine without any
 * network: every name lookup fails the way getaddrinfo fails offline (ENOTFOUND), so no packet
 * leaves this machine (no address, hence no connection). IP literals are not looked up at all.
 */
type LookupCallback = (error: NodeJS.ErrnoException | null, address?: unknown, family?: number) => void;

function notFound(hostname: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), {
    code: 'ENOTFOUND',
    errno: -3008,
    syscall: 'getaddrinfo',
    hostname,
  });
}

const offlineLookup = (hostname: string, options: unknown, callback?: LookupCallback): void => {
  const done = (typeof options === 'function' ? options : callback) as LookupCallback;
  process.nextTick(() => done(notFound(hostname)));
};
(dns as { lookup: unknown }).lookup = offlineLookup;
(dns.promises as { lookup: unknown }).lookup = (hostname: string) => Promise.reject(notFound(hostname));
