// One error type for every payload build failure. It extends the project's
// PocketError so `node build.js payload` and the CLI map it to the documented
// `payload` exit code and print the one line plus the hint.
import { PocketError } from '../../src/errors.ts';

export class PayloadBuildError extends PocketError {
  constructor(message: string, options: { hint?: string; cause?: unknown; details?: Record<string, unknown> } = {}) {
    super('payload', message, options);
  }
}

/**
 * Turns an unexpected file-system failure into a PayloadBuildError that names
 * the path, because "ENOSPC" alone does not tell a person which disk is full.
 */
export function asPayloadBuildError(error: unknown, root: string): PayloadBuildError {
  if (error instanceof PayloadBuildError) return error;
  const err = error as NodeJS.ErrnoException;
  const where = typeof err?.path === 'string' ? relativeTo(root, err.path) : 'the payload cache';
  switch (err?.code) {
    case 'ENOSPC':
      return new PayloadBuildError(`no space left on device while writing ${where}`, {
        hint: 'free some space (the unpacked kernel needs about 450 MB under .cache/payload) and retry',
        cause: error,
      });
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      return new PayloadBuildError(`permission denied while writing ${where}`, {
        hint: 'run the build as the owner of the checkout, on a writable file system',
        cause: error,
      });
    default: {
      const message = error instanceof Error ? error.message : String(error);
      return new PayloadBuildError(`payload build failed: ${message}`, { cause: error });
    }
  }
}

function relativeTo(root: string, path: string): string {
  return path.startsWith(`${root}/`) ? path.slice(root.length + 1) : path;
}
