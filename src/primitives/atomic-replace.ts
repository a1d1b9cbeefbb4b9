// Replacing a file so that a reader, a crash or a pulled stick finds the old
// content or the new, never half of either: the one write-then-rename of the
// code base, with its temporary name and its sync policy stated here once.
//
// - The temporary file is `<target>.<pid>-<8 hex>.tmp` in the target's own
//   folder (a rename is atomic only within one file system): unique per
//   writer, so two writers never share one, and naming the process that left
//   it, so a cleanup can tell a live writer's file from a dead one's
//   (isTempOf, tempWriterPid).
// - The policy: the new content is fsync'd before the rename and the folder
//   after it. A stick may be FAT or exFAT and may be pulled at any moment;
//   neither orders data before names, so without the first sync a rename can
//   reach the stick before the bytes it names (a file of the right name and
//   wrong content), and without the second the rename itself may not be
//   there at all after the file's writer has said it is.
// - A failure removes the temporary file and rethrows: the target is as it was.
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { open, rename, rm, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { dirname } from 'node:path';

/** A new temporary name for a replacement of `target` (see the header). */
export function tempPathFor(target: string): string {
  return `${target}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`;
}

function tempPattern(targetName: string): RegExp {
  // The pid is optional: lock updates before this module named theirs `<target>.<hex>.tmp`.
  return new RegExp(`^${targetName.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.(?:(\\d+)-)?[0-9a-f]+\\.tmp$`);
}

/** Is the folder entry `name` a temporary file left by a replacement of the file named `targetName`? */
export function isTempOf(name: string, targetName: string): boolean {
  return tempPattern(targetName).test(name);
}

/** The pid of the process that made the temporary file `name`, if it is one of `targetName`'s and says so. */
export function tempWriterPid(name: string, targetName: string): number | undefined {
  const pid = tempPattern(targetName).exec(name)?.[1];
  return pid === undefined ? undefined : Number(pid);
}

export interface ReplaceOptions {
  /** The new file's mode (default 0o666 less the umask). */
  mode?: number;
}

/** Replaces `target` with `data`. */
export async function replaceFile(target: string, data: string | Uint8Array, options: ReplaceOptions = {}): Promise<void> {
  await replaceFileWith(target, (temp) => writeFile(temp, data, { flush: true, ...(options.mode === undefined ? {} : { mode: options.mode }) }));
}

/**
 * Replaces `target` with what `fill` writes at the temporary path it is given
 * (a copy, a database's VACUUM INTO); the file is synced after `fill`.
 */
export async function replaceFileWith(target: string, fill: (temp: string) => Promise<void>): Promise<void> {
  const temp = tempPathFor(target);
  try {
    await fill(temp);
    const handle = await open(temp, 'r+');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, target);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  await syncDirectory(dirname(target));
}

/** replaceFile for callers that cannot wait (an open that must stay synchronous). */
export function replaceFileSync(target: string, data: string | Uint8Array, options: ReplaceOptions = {}): void {
  replaceFileWithSync(target, (temp) => writeFileSync(temp, data, { flush: true, ...(options.mode === undefined ? {} : { mode: options.mode }) }));
}

/** replaceFileWith for callers that cannot wait. */
export function replaceFileWithSync(target: string, fill: (temp: string) => void): void {
  const temp = tempPathFor(target);
  try {
    fill(temp);
    const fd = openSync(temp, 'r+');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, target);
  } catch (error) {
    rmSync(temp, { force: true });
    throw error;
  }
  syncDirectorySync(dirname(target));
}

/**
 * Nothing to sync: the host cannot open or fsync a folder as one (Windows,
 * where the rename is durable through the file system's own journal), or the
 * folder is not there. Any other failure (EIO: the stick is gone) is thrown.
 */
function nothingToSync(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'EISDIR' || code === 'EPERM' || code === 'EINVAL' || code === 'EACCES' || code === 'EBADF' || code === 'ENOENT';
}

/** fsync of a folder: makes a rename, create or unlink in it durable. */
export async function syncDirectory(dir: string): Promise<void> {
  let handle;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch (error) {
    if (!nothingToSync(error)) throw error;
  } finally {
    await handle?.close().catch(() => {});
  }
}

/** syncDirectory for callers that cannot wait. */
export function syncDirectorySync(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch (error) {
    if (!nothingToSync(error)) throw error;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
