// Progress is a stream of plain events (the etcher-sdk way): the builder only
// emits them, and whoever calls it decides how to show them.

export interface PayloadProgressEvent {
  step: string;
  message: string;
  done?: number;
  total?: number;
}

export type PayloadProgressListener = (event: PayloadProgressEvent) => void;

/**
 * The renderer used when the caller passes none: one line per step on stderr
 * (plus every warning), no colours and no cursor tricks, so it reads the same
 * in a terminal, a CI log or with NO_COLOR set.
 */
export function lineRenderer(write: (line: string) => void = (line) => process.stderr.write(line)): PayloadProgressListener {
  let lastStep = '';
  return (event) => {
    if (event.step !== 'warning' && event.step === lastStep) return;
    lastStep = event.step;
    const count = event.total === undefined ? '' : ` (${event.total})`;
    const prefix = event.step === 'warning' ? 'payload: warning:' : `payload: ${event.step}:`;
    write(`${prefix} ${event.message}${count}\n`);
  };
}
