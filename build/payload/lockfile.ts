// payload/payload.lock.json: the exact Debian packages a payload was built
// from, so two builds of the same commit get the same bytes (or say loudly
// why they could not).
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { PayloadBuildError } from './errors.ts';
import { writeFileAtomic } from './atomic.ts';

export const lockedPackageSchema = z.object({
  name: z.string().min(1),
  version: z.string().min(1),
  architecture: z.string().min(1),
  filename: z.string().regex(/^[^/]+\.deb$/),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  size: z.number().int().nonnegative(),
  /**
   * Why the package is in the payload: the kernel, named in the recipe,
   * providing a shared library, or the kernel headers the recipe's own
   * modules are compiled against (build input only, not shipped).
   */
  role: z.enum(['kernel', 'recipe', 'library', 'headers']),
});

export const payloadLockSchema = z.object({
  lockVersion: z.literal(1),
  guest: z.string().min(1),
  packages: z.array(lockedPackageSchema),
});

export type LockedPackage = z.infer<typeof lockedPackageSchema>;
export type PayloadLock = z.infer<typeof payloadLockSchema>;

/** Reads the lock; undefined when there is none yet (the first build writes it). */
export async function readLock(path: string): Promise<PayloadLock | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new PayloadBuildError(`${path} is not valid JSON`, { hint: 'restore it from git, or delete it to re-lock to the current candidates', cause: error });
  }
  const parsed = payloadLockSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue ? `${issue.path.join('.')}: ${issue.message}` : 'invalid';
    throw new PayloadBuildError(`${path} is malformed (${where})`, { hint: 'restore it from git, or delete it to re-lock to the current candidates' });
  }
  return parsed.data;
}

/** Stable text: packages sorted by role then name, so a re-lock diff shows only real changes. */
export function formatLock(lock: PayloadLock): string {
  const order = { kernel: 0, recipe: 1, library: 2, headers: 3 } as const;
  const packages = [...lock.packages].sort((a, b) => order[a.role] - order[b.role] || a.name.localeCompare(b.name));
  const body = {
    lockVersion: lock.lockVersion,
    guest: lock.guest,
    packages: packages.map((p) => ({
      name: p.name,
      version: p.version,
      architecture: p.architecture,
      filename: p.filename,
      sha256: p.sha256,
      size: p.size,
      role: p.role,
    })),
  };
  return `${JSON.stringify(body, null, 2)}\n`;
}

export function sameLock(a: PayloadLock | undefined, b: PayloadLock): boolean {
  return a !== undefined && formatLock(a) === formatLock(b);
}

export async function writeLock(path: string, lock: PayloadLock): Promise<void> {
  await writeFileAtomic(path, formatLock(lock));
}
