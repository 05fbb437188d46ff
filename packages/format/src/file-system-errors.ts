import { AirgapError, type ErrorCategory } from './errors.js';

/**
 * The one mapping of file-system errors that the user's environment causes (a read-only or full
 * disk, permissions, a wrong path) to a typed error that names the path and says what to do.
 * Pure: it looks at an error object and does no I/O, so every package (and the CLI's last line of
 * defence) uses the same words. Callers wrap at their boundary and pass `where`: the place the
 * user knows (the cache dir, the work dir, the bundle path), which is also the path named when the
 * error has none (a write to an open file reports no path).
 */

export const FILE_SYSTEM_ERROR_CODES = {
  /** ENOSPC, EDQUOT */
  FS_NO_SPACE: 'failure',
  /** EROFS */
  FS_READ_ONLY: 'failure',
  /** EACCES, EPERM */
  FS_PERMISSION_DENIED: 'failure',
  /** ENOENT */
  FS_NOT_FOUND: 'failure',
  /** ENOENT from mkdir: the parent is missing, read-only or not writable (Node cannot tell which). */
  FS_CANNOT_CREATE: 'failure',
  /** EISDIR */
  FS_IS_A_DIRECTORY: 'failure',
  /** ENOTDIR; EEXIST from mkdir (a file where a directory should be) */
  FS_NOT_A_DIRECTORY: 'failure',
  /** EMFILE, ENFILE */
  FS_TOO_MANY_OPEN_FILES: 'failure',
  /** EIO */
  FS_IO_ERROR: 'failure',
  /** ENAMETOOLONG */
  FS_NAME_TOO_LONG: 'failure',
  /** ELOOP */
  FS_LINK_LOOP: 'failure',
} as const satisfies Record<string, ErrorCategory>;

export type FileSystemErrorCode = keyof typeof FILE_SYSTEM_ERROR_CODES;

export class FileSystemError extends AirgapError<FileSystemErrorCode> {
  /** The system's error code (`ENOSPC`, `EROFS`, …). */
  readonly errno: string;
  /** The system call that failed (`open`, `mkdir`, `write`, …), when known. */
  readonly syscall: string | undefined;

  constructor(
    code: FileSystemErrorCode,
    message: string,
    options: { cause: unknown; hint: string; path: string | undefined; errno: string; syscall?: string },
  ) {
    super(code, FILE_SYSTEM_ERROR_CODES[code], message, options);
    this.errno = options.errno;
    this.syscall = options.syscall;
  }
}

interface ErrnoFacts {
  readonly code: FileSystemErrorCode;
  readonly reason: string;
  /**
   * What the advice is about: `disk` (full, read-only, failing: the place the user chose, with
   * `elsewhere` as the way out), `access` (permissions of the failing path), `path` (a wrong
   * path: the caller's `pathHint` names the flag that gave it).
   */
  readonly about: 'disk' | 'access' | 'path';
  readonly advice: (place: string, elsewhere: string) => string;
}

const ERRNO_FACTS: Readonly<Record<string, ErrnoFacts>> = {
  ENOSPC: {
    code: 'FS_NO_SPACE',
    reason: 'no space left on the device',
    about: 'disk',
    advice: (place, elsewhere) =>
      `free space on the disk of ${place}, or ${elsewhere}; then run the command again`,
  },
  EDQUOT: {
    code: 'FS_NO_SPACE',
    reason: 'disk quota exceeded',
    about: 'disk',
    advice: (place, elsewhere) => `free space within your quota on ${place}, or ${elsewhere}`,
  },
  EROFS: {
    code: 'FS_READ_ONLY',
    reason: 'read-only file system',
    about: 'disk',
    advice: (place, elsewhere) =>
      `${place} is on a read-only file system: remount it read-write, or ${elsewhere}`,
  },
  EIO: {
    code: 'FS_IO_ERROR',
    reason: 'input/output error',
    about: 'disk',
    advice: (place, elsewhere) => `the disk of ${place} reported an I/O error: check it, or ${elsewhere}`,
  },
  EMFILE: {
    code: 'FS_TOO_MANY_OPEN_FILES',
    reason: 'too many open files',
    about: 'disk',
    advice: () => 'raise the open-file limit (ulimit -n), then run the command again',
  },
  ENFILE: {
    code: 'FS_TOO_MANY_OPEN_FILES',
    reason: 'too many open files on the system',
    about: 'disk',
    advice: () => 'close other programs or raise the system limit (fs.file-max), then run the command again',
  },
  EACCES: {
    code: 'FS_PERMISSION_DENIED',
    reason: 'permission denied',
    about: 'access',
    advice: (place) => `check the permissions of ${place}, or run as a user who may use it`,
  },
  EPERM: {
    code: 'FS_PERMISSION_DENIED',
    reason: 'operation not permitted',
    about: 'access',
    advice: (place) => `check the permissions and attributes of ${place}, or run as a user who may use it`,
  },
  ENOENT: {
    code: 'FS_NOT_FOUND',
    reason: 'no such file or directory',
    about: 'path',
    advice: (place) => `check the path ${place}`,
  },
  EISDIR: {
    code: 'FS_IS_A_DIRECTORY',
    reason: 'it is a directory',
    about: 'path',
    advice: () => 'give the path of a file, not of a directory',
  },
  ENOTDIR: {
    code: 'FS_NOT_A_DIRECTORY',
    reason: 'a part of the path is not a directory',
    about: 'path',
    advice: (place) => `check the path ${place}: one of its parents is a file`,
  },
  ENAMETOOLONG: {
    code: 'FS_NAME_TOO_LONG',
    reason: 'file name too long',
    about: 'path',
    advice: () => 'use a shorter path',
  },
  ELOOP: {
    code: 'FS_LINK_LOOP',
    reason: 'too many levels of symbolic links',
    about: 'path',
    advice: (place) => `check the symbolic links in ${place}`,
  },
};

// A recursive mkdir on a read-only or unwritable disk reports ENOENT: Node (20) looks at the path
// after the failed mkdir and reports that it is missing instead of the mkdir's own error.
const MKDIR_ENOENT: ErrnoFacts = {
  code: 'FS_CANNOT_CREATE',
  reason: 'its parent directory is missing, read-only or not writable',
  about: 'disk',
  advice: (place, elsewhere) =>
    `check that ${place} is on a writable file system and that its parent exists, or ${elsewhere}`,
};

// mkdir of a path where a file (not a directory) already is: `--out-dir` naming a file.
const MKDIR_EEXIST: ErrnoFacts = {
  code: 'FS_NOT_A_DIRECTORY',
  reason: 'a file that is not a directory is in the way',
  about: 'path',
  advice: (place) => `give the path of a directory, or move ${place} away`,
};

/** System calls in the user's words, for "cannot <verb> <path>". */
const SYSCALL_VERBS: Readonly<Record<string, string>> = {
  open: 'open',
  read: 'read',
  write: 'write',
  mkdir: 'create the directory',
  mkdtemp: 'create a directory in',
  rmdir: 'remove',
  unlink: 'remove',
  rm: 'remove',
  rename: 'move',
  scandir: 'list',
  opendir: 'list',
  stat: 'read',
  lstat: 'read',
  fstat: 'read',
  readlink: 'read',
  access: 'access',
  copyfile: 'copy',
  fsync: 'write',
  fdatasync: 'write',
  ftruncate: 'write',
  chmod: 'change the mode of',
  fchmod: 'change the mode of',
  utime: 'set the time of',
  futime: 'set the time of',
  symlink: 'create the link',
  link: 'create the link',
  close: 'close',
};

/** Errors with these codes that come from sockets or processes are not about files. */
const NOT_FILE_SYSCALLS = /^(connect|getaddrinfo|listen|bind|accept|kill|spawn|uv_os_)/;

export interface FileSystemErrorContext {
  /** The place the user chose (cache dir, work dir, output or bundle path): named in the advice
   * about a full or read-only disk, and as the path when the error itself names none. */
  readonly where?: string | undefined;
  /** The way out of a full or read-only disk in this caller's words (`pass --work-dir DIR on
   * another disk`); default "use another location". */
  readonly elsewhere?: string | undefined;
  /** Advice for a wrong path (not found, not a directory, …) in this caller's words, e.g. which
   * flag gave it (`check the --key path`). */
  readonly pathHint?: string | undefined;
}

/**
 * The typed error for a file-system error the user's environment causes, or undefined when
 * `error` is something else (including any AirgapError, which already says what it means).
 */
export function fileSystemError(
  error: unknown,
  context: FileSystemErrorContext = {},
): FileSystemError | undefined {
  if (error instanceof AirgapError || !(error instanceof Error)) return undefined;
  const { code, syscall, path } = error as NodeJS.ErrnoException;
  if (typeof code !== 'string') return undefined;
  const facts =
    syscall === 'mkdir' && code === 'ENOENT'
      ? MKDIR_ENOENT
      : syscall === 'mkdir' && code === 'EEXIST'
        ? MKDIR_EEXIST
        : ERRNO_FACTS[code];
  if (facts === undefined || (syscall !== undefined && NOT_FILE_SYSCALLS.test(syscall))) return undefined;
  const failing = path ?? context.where;
  const verb = (syscall === undefined ? undefined : SYSCALL_VERBS[syscall]) ?? 'use';
  const place = (facts.about === 'disk' ? (context.where ?? path) : failing) ?? 'the path given';
  const advice =
    facts.about === 'path' && context.pathHint !== undefined
      ? context.pathHint
      : facts.advice(place, context.elsewhere ?? 'use another location');
  return new FileSystemError(
    facts.code,
    failing === undefined
      ? `cannot ${verb} a file: ${facts.reason}`
      : `cannot ${verb} ${failing}: ${facts.reason}`,
    {
      cause: error,
      hint: advice,
      path: failing,
      errno: code,
      ...(syscall === undefined ? {} : { syscall }),
    },
  );
}

/** `fileSystemError(error, context)` if it is one, else `error` unchanged: for `throw` in a catch. */
export function asFileSystemError(error: unknown, context: FileSystemErrorContext = {}): unknown {
  return fileSystemError(error, context) ?? error;
}
