// A detached session's stdout and stderr are its log on the stick
// (run/session.log, opened by src/cli/detach.ts). Whatever the session
// prints, whoever prints it, passes through one capped, rate-limited log
// (src/primitives/capped-log.ts): a guest that makes the session complain in a
// loop cannot grow the log past its cap.
import { fstatSync } from 'node:fs';
import { CappedLog, LOG_LIMITS, type LogLimits } from '../primitives/capped-log.ts';

type Write = typeof process.stderr.write;

export function capSessionOutput(limits: LogLimits = LOG_LIMITS.session): CappedLog {
  let initialBytes = 0;
  try {
    initialBytes = fstatSync(2).size;
  } catch {
    // not a file (a terminal when run by hand): nothing to count
  }
  const stderr = process.stderr;
  const raw = stderr.write.bind(stderr) as (chunk: string | Uint8Array, callback?: (error?: Error | null) => void) => boolean;
  // Both descriptors are the same file: every line goes out through stderr, in order.
  const log = new CappedLog({ write: (data) => void raw(data), end: async () => {} }, limits, { initialBytes });
  for (const stream of [process.stdout, process.stderr]) {
    const writer = log.writer();
    stream.write = ((
      chunk: string | Uint8Array,
      encodingOrCallback?: BufferEncoding | ((error?: Error | null) => void),
      callback?: (error?: Error | null) => void,
    ) => {
      const done = typeof encodingOrCallback === 'function' ? encodingOrCallback : callback;
      writer.write(typeof chunk === 'string' ? chunk : Buffer.from(chunk));
      // Its callback runs once what was written before it has left, as a stream's would.
      return raw('', done);
    }) as Write;
  }
  // The pending "repeated"/"dropped" counts are written before the process ends.
  process.on('exit', () => log.flushNotes());
  return log;
}
