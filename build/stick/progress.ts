// The stick builder's progress: a stream of plain events (the same shape as
// the payload build's and src/cli/progress.ts's), rendered by the caller.
export interface ProgressEvent {
  step: string;
  message: string;
  done?: number;
  total?: number;
  /** What done and total count: bytes, or (without it) items. */
  unit?: 'bytes';
}

export type ProgressListener = (event: ProgressEvent) => void;

/** One line per message on stderr: for `node build.js` steps. */
export function lineProgress(prefix: string): ProgressListener {
  let last = '';
  return (event) => {
    if (event.message === last) return;
    last = event.message;
    process.stderr.write(`${prefix}: ${event.message}\n`);
  };
}
