// Outputs appear whole or not at all: write beside the target, then rename.
// An interrupted build leaves at most a *.tmp-<pid> file, never a truncated
// initrd.img that a launcher would try to boot.
import { rename, rm, writeFile, mkdir, copyFile } from 'node:fs/promises';
import { dirname } from 'node:path';

function tempPath(path: string): string {
  return `${path}.tmp-${process.pid}`;
}

export async function writeFileAtomic(path: string, data: string | Uint8Array | readonly Uint8Array[], mode = 0o644): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temp = tempPath(path);
  try {
    await writeFile(temp, Array.isArray(data) ? Buffer.concat(data as Uint8Array[]) : (data as string | Uint8Array), { mode });
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

export async function copyFileAtomic(from: string, to: string): Promise<void> {
  await mkdir(dirname(to), { recursive: true });
  const temp = tempPath(to);
  try {
    await copyFile(from, temp);
    await rename(temp, to);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}
