// `--guest NAME` on commands that reach the running session (status, stop,
// eject): one guest runs from a stick at a time, so another name is refused
// with the one that runs named, never silently applied to it. Without
// --guest they act on whichever guest runs (eject: "them all").
import { PocketError } from '../errors.ts';
import type { LockHolder } from '../stick/lock.ts';

export function checkRunningGuest(holder: LockHolder, wanted: string | undefined, stickRoot: string, command: string): void {
  if (wanted === undefined || holder.guest === undefined || holder.guest === wanted) return;
  throw new PocketError('noSession', `no guest "${wanted}" is running from ${stickRoot}; ${holder.guest} is`, {
    hint: `launcher ${command} --guest ${holder.guest}`,
    details: { running: holder.guest, guest: wanted },
  });
}
