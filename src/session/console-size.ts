// The attached console's window size: the guest's serial line has none of
// its own (stty size fails, full-screen programs guess 80x24), so the
// launcher sets it from the person's terminal, and again on every resize.
// Setting it (stty rows/cols, run as root over the exec channel) makes the
// guest kernel send SIGWINCH to the console's foreground job, as a terminal does.
import type { Session } from './session.ts';
import { execSpec } from './exec-relay.ts';

/** The serial console's device in the guest (console=ttyS0 in the payload's command line). */
export const GUEST_CONSOLE_DEVICE = '/dev/ttyS0';

export function setConsoleSize(session: Session, rows: number, columns: number): Promise<boolean> {
  const execs = session.execs;
  if (!execs || !(rows > 0) || !(columns > 0)) return Promise.resolve(false);
  return new Promise((resolve) => {
    try {
      execs
        .start(execSpec(undefined, { path: 'stty', args: ['-F', GUEST_CONSOLE_DEVICE, 'rows', String(rows), 'cols', String(columns)] }), {
          onFrame: (frame) => {
            if (frame.type === 'X') resolve(frame.payload.readInt32LE(0) === 0);
            else if (frame.type === 'F') resolve(false);
          },
        })
        .end();
    } catch {
      resolve(false);
    }
  });
}
