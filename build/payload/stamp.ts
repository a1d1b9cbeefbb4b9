// Lets a rebuild with nothing changed finish in well under a second: the stamp
// records a hash of every input (lock, recipe, rootfs files, the builder's own
// source) and of the outputs it produced. Both must still match to skip.
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import { z } from 'zod';
import { sha256File } from './hash.ts';
import { writeFileAtomic } from './atomic.ts';

const stampSchema = z.object({
  stampVersion: z.literal(1),
  inputs: z.string(),
  kernelVersion: z.string(),
  initrdBytes: z.number(),
  outputs: z.record(z.string(), z.string()),
});

export type PayloadStamp = z.infer<typeof stampSchema>;

/** Every file under dir (recursively), as sorted paths relative to it. */
export async function listTree(dir: string, prefix = ''): Promise<string[]> {
  let entries;
  try {
    entries = await readdir(posix.join(dir, prefix), { withFileTypes: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  const result: string[] = [];
  for (const entry of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const rel = prefix === '' ? entry.name : `${prefix}/${entry.name}`;
    if (entry.isDirectory()) result.push(...(await listTree(dir, rel)));
    else result.push(rel);
  }
  return result;
}

/** Hash of the inputs. Paths, the executable bit and symlink targets count, not mtimes. */
export async function hashInputs(files: Array<{ label: string; path: string }>, trees: Array<{ label: string; dir: string }>): Promise<string> {
  const hash = createHash('sha256');
  const add = async (label: string, path: string) => {
    let info;
    try {
      info = await lstat(path);
    } catch {
      hash.update(`${label}\0missing\0`);
      return;
    }
    if (info.isSymbolicLink()) hash.update(`${label}\0link\0${await readlink(path)}\0`);
    else hash.update(`${label}\0${info.mode & 0o111 ? 'exec' : 'file'}\0`).update(await readFile(path)).update('\0');
  };
  for (const file of files) await add(file.label, file.path);
  for (const tree of trees) {
    for (const rel of await listTree(tree.dir)) await add(`${tree.label}/${rel}`, posix.join(tree.dir, rel));
  }
  return hash.digest('hex');
}

export async function readStamp(path: string): Promise<PayloadStamp | undefined> {
  try {
    const parsed = stampSchema.safeParse(JSON.parse(await readFile(path, 'utf8')));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** True when the stamp was made from these inputs and every output it names is still byte-identical. */
export async function stampIsCurrent(stamp: PayloadStamp | undefined, inputs: string, dir: string): Promise<boolean> {
  if (!stamp || stamp.inputs !== inputs) return false;
  for (const [name, digest] of Object.entries(stamp.outputs)) {
    try {
      if ((await sha256File(posix.join(dir, name))) !== digest) return false;
    } catch {
      return false;
    }
  }
  return Object.keys(stamp.outputs).length > 0;
}

export async function writeStamp(path: string, stamp: PayloadStamp): Promise<void> {
  await writeFileAtomic(path, `${JSON.stringify(stamp, null, 2)}\n`);
}
