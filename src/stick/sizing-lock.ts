// Sizing across running guests, one launch at a time (docs/guests.md,
// "Several at once"). A launch reads the other sessions' recorded sizes,
// sizes its guest beside them and records its own size in its session lock;
// two launches doing that at the same instant would each size without the
// other. `run/sizing.lock` (created with O_EXCL, as the guest locks are) is
// held around those three steps, so the second launch waits the moment the
// first takes and then sees its size. A dead holder's lock is taken over
// (src/stick/lock-takeover.ts), so a launcher killed while sizing
// never blocks the next.
import { open, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { TimeoutError } from '../errors.ts';
import { actorAlive, me, readActor, takeOver } from './lock-takeover.ts';
import type { StickLayout } from './layout.ts';

/** Sizing takes milliseconds; a holder alive this long is stuck, and the launch says so rather than wait for ever. */
const WAIT_MS = 120_000;

export function sizingLockFile(layout: StickLayout): string {
  return join(layout.runDir, 'sizing.lock');
}

/** Runs `sizeAndRecord` holding the stick's sizing lock. */
export async function withSizingLock<T>(layout: StickLayout, sizeAndRecord: () => Promise<T>, waitMs = WAIT_MS): Promise<T> {
  const path = sizingLockFile(layout);
  const deadline = Date.now() + waitMs;
  for (;;) {
    let handle;
    try {
      handle = await open(path, 'wx');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const holder = await readActor(path).catch(() => undefined);
      // Empty or half-written: its maker may be writing it this instant; only an old one is a dead maker's.
      const unreadable = holder === undefined && Date.now() - ((await stat(path).catch(() => undefined))?.mtimeMs ?? 0) > 5_000;
      if (unreadable || (holder !== undefined && !actorAlive(holder))) await takeOver(path, holder);
      else if (holder !== undefined && Date.now() > deadline)
        throw new TimeoutError(
          `waiting for launcher ${holder.command} (pid ${holder.pid}) to size its guest`,
          waitMs,
          `if it is stuck, stop it; the lock is ${path}`,
        );
      else await new Promise((resolve) => setTimeout(resolve, 10 + Math.random() * 20));
      continue;
    }
    try {
      await handle.writeFile(JSON.stringify(me('size a guest')));
    } finally {
      await handle.close();
    }
    try {
      return await sizeAndRecord();
    } finally {
      await rm(path, { force: true });
    }
  }
}
