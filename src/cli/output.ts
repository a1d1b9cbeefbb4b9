// How the CLI talks: human lines on stderr/stdout with colour only where the
// ecosystem expects it (picocolors honours NO_COLOR, FORCE_COLOR and TTYs),
// or one JSON document on stdout with --json. Commands never print directly.
import pc from 'picocolors';
import { asPocketError, type PocketError } from '../errors.ts';

export interface OutputOptions {
  json: boolean;
}

export class Output {
  readonly json: boolean;

  constructor(options: OutputOptions) {
    this.json = options.json;
  }

  /** Progress and narration: stderr, so stdout stays data. Silent with --json. */
  info(message: string): void {
    if (!this.json) process.stderr.write(`${pc.dim('pocketvm:')} ${message}\n`);
  }

  notice(message: string): void {
    if (!this.json) process.stderr.write(`${pc.yellow('pocketvm:')} ${message}\n`);
  }

  /** A command's human result: stdout. */
  line(text = ''): void {
    if (!this.json) process.stdout.write(`${text}\n`);
  }

  /** A command's machine result. */
  data(value: unknown): void {
    if (this.json) process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
  }

  /** The one line a failure gets, plus the hint; returns the exit code. */
  failure(error: unknown): number {
    const failure: PocketError = asPocketError(error);
    if (this.json) {
      process.stdout.write(
        `${JSON.stringify({ error: { code: failure.exitCode, kind: failure.exit, message: failure.message, hint: failure.hint, ...failure.details } }, null, 2)}\n`,
      );
    } else {
      const hint = failure.hint ? ` ${pc.dim(`(${failure.hint})`)}` : '';
      process.stderr.write(`${pc.red('pocketvm: error:')} ${failure.message}${hint}\n`);
    }
    if (process.env['POCKETVM_DEBUG'] && failure.cause) process.stderr.write(`${String((failure.cause as Error).stack ?? failure.cause)}\n`);
    return failure.exitCode;
  }
}

/**
 * Errors that say the file or terminal behind stdout/stderr is gone: a
 * detached session's log on a stick that was just pulled out (a FUSE or USB
 * file system answers ENOTCONN, EIO, ENODEV or ENXIO), a closed terminal.
 */
const GONE_CODES = new Set(['EPIPE', 'ERR_STREAM_DESTROYED', 'EIO', 'ENOTCONN', 'ENODEV', 'ENXIO']);

/**
 * A reader that goes away early (`launcher … | head -1`) is not a failure of
 * the launcher: the first EPIPE on stdout or stderr ends that stream quietly,
 * and whatever the command writes there afterwards is dropped. The command
 * itself runs to its end (a registry commit is not cut off half way) and
 * exits with its own code; nothing prints a stack. The same holds when the
 * device under the output is gone: a detached session whose log was on a
 * pulled stick must get to its teardown (QEMU killed, control socket
 * removed, exit 15), not die of a notice it printed a moment before the
 * presence monitor saw the removal. Other errors (ENOSPC: a full disk under
 * `> file`) still end the command loudly.
 */
export function quietWhenReaderCloses(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code && GONE_CODES.has(error.code)) return;
      throw error;
    });
  }
}

/**
 * Resolves once everything written to stdout and stderr has left the
 * process. Node writes to a pipe only what the pipe takes at once and queues
 * the rest; `process.exit` drops the queue, so a command's output through
 * `| wc -l` ended after the pipe's first 64 KiB. An empty write's callback
 * runs after every write before it (a stream keeps their order).
 */
export async function drainStdio(): Promise<void> {
  await Promise.all(
    [process.stdout, process.stderr].map(
      (stream) =>
        new Promise<void>((resolve) => {
          if (stream.destroyed || stream.writableEnded) resolve();
          else stream.write('', () => resolve());
        }),
    ),
  );
}

export const bold = pc.bold;
export const dim = pc.dim;
export const green = pc.green;
