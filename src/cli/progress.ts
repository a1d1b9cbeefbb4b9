// Renders a progress event stream (payload build, stick copy) for a person:
// a bar on a terminal, a line per step otherwise, nothing with --json.
import { SingleBar } from 'cli-progress';
import type { Output } from './output.ts';

export interface ProgressEvent {
  step: string;
  message: string;
  done?: number;
  total?: number;
  /** What done and total count: bytes, or (without it) items such as packages or files. */
  unit?: 'bytes';
}

function formatBytes(bytes: number): string {
  return bytes >= 1048576 ? `${(bytes / 1048576).toFixed(1)} MiB` : `${Math.round(bytes / 1024)} KiB`;
}

export function progressRenderer(output: Output): { onProgress: (event: ProgressEvent) => void; finish: () => void } {
  let bar: SingleBar | undefined;
  let lastMessage = '';
  const finish = () => {
    bar?.stop();
    bar = undefined;
  };
  const onProgress = (event: ProgressEvent) => {
    if (output.json) return;
    const measurable = event.total !== undefined && event.total > 0 && event.done !== undefined;
    if (measurable && process.stderr.isTTY) {
      if (!bar) {
        bar = new SingleBar({ format: ' {bar} {percentage}% | {label}', hideCursor: true, clearOnComplete: true, stream: process.stderr, barsize: 30 });
        bar.start(event.total!, event.done!, { label: event.message });
      }
      bar.setTotal(event.total!);
      bar.update(event.done!, { label: event.message });
      return;
    }
    finish();
    if (event.message === lastMessage) return;
    lastMessage = event.message;
    const amount = !measurable
      ? ''
      : event.unit === 'bytes'
        ? ` (${formatBytes(event.done!)} of ${formatBytes(event.total!)})`
        : ` (${event.done} of ${event.total})`;
    output.info(`${event.message}${amount}`);
  };
  return { onProgress, finish };
}

/**
 * A percentage (qemu-img's) for a person: rewritten in place on a terminal,
 * a line per tenth otherwise, nothing with --json. `finish` ends the line.
 */
export function percentRenderer(output: Output): { step: (message: string) => void; progress: (percent: number) => void; finish: () => void } {
  let shown = -10;
  return {
    step: (message) => output.info(message),
    progress: (percent) => {
      if (output.json) return;
      if (process.stderr.isTTY) process.stderr.write(`\r  ${percent.toFixed(0).padStart(3)}%`);
      else if (percent >= shown + 10 || (percent === 100 && shown < 100)) {
        shown = percent;
        output.info(`  ${percent.toFixed(0)}%`);
      }
    },
    finish: () => {
      if (process.stderr.isTTY && !output.json) process.stderr.write('\r');
    },
  };
}
