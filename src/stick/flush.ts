// Before "safe to remove": everything the session wrote to the stick reaches
// the device. Each file under run/ and users/ and each of their folders is
// fsync'd (cheap when already flushed: QEMU flushes the disk as it stops, a
// suspend fsyncs its state file); this is portable where a whole-filesystem
// sync is not, and on FAT it also settles directory entries.
import { open, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { StickLayout } from './layout.ts';

async function syncPath(path: string): Promise<boolean> {
  for (const flags of ['r+', 'r']) {
    try {
      const handle = await open(path, flags);
      try {
        await handle.sync();
        return true;
      } finally {
        await handle.close();
      }
    } catch {
      // read-only file (try 'r'), or a folder Windows will not open
    }
  }
  return false;
}

async function syncTree(dir: string, depth: number): Promise<number> {
  let synced = 0;
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory() && depth > 0) synced += await syncTree(path, depth - 1);
    else if (entry.isFile() && (await syncPath(path))) synced += 1;
  }
  if (await syncPath(dir)) synced += 1;
  return synced;
}

/** fsyncs the session's files on the stick; how many and how long. */
export async function flushStick(layout: StickLayout): Promise<{ synced: number; ms: number }> {
  const started = performance.now();
  let synced = 0;
  for (const dir of [layout.runDir, layout.usersRoot]) synced += await syncTree(dir, 4);
  if (await syncPath(layout.root)) synced += 1;
  return { synced, ms: Math.round(performance.now() - started) };
}
