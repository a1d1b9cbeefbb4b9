// Small guest programs the payload compiles itself (payload/helpers/*.c):
// pieces that busybox and the Debian packages do not provide, such as the
// exec server behind `launcher exec` (pocketvm-execd). Each is one C file,
// linked statically with the build machine's gcc-12 and glibc (libc6-dev), so
// it needs no library in the guest; it lands at usr/lib/pocketvm/<name>.
import { mkdir, readdir } from 'node:fs/promises';
import { posix } from 'node:path';
import type { CpioEntry } from './cpio.ts';
import { PayloadBuildError } from './errors.ts';
import { readFile } from 'node:fs/promises';
import type { PayloadProgressListener } from './progress.ts';
import { CommandError, runCommand } from './run.ts';

/** Where the helpers go in the guest. */
export const GUEST_HELPER_DIR = 'usr/lib/pocketvm';

export async function buildGuestHelpers(sourceDir: string, work: string, onProgress: PayloadProgressListener): Promise<CpioEntry[]> {
  const sources = (await readdir(sourceDir).catch(() => [] as string[])).filter((name) => name.endsWith('.c')).sort();
  if (sources.length === 0) return [];
  await mkdir(work, { recursive: true });
  const entries: CpioEntry[] = [];
  for (const [index, source] of sources.entries()) {
    const name = source.slice(0, -2);
    onProgress({ step: 'compile', message: `guest helper ${name}`, done: index, total: sources.length });
    const out = posix.join(work, name);
    try {
      await runCommand('gcc-12', ['-static', '-Os', '-s', '-Wall', '-Wextra', '-Werror', '-o', out, posix.join(sourceDir, source)]);
    } catch (error) {
      if (error instanceof CommandError && error.notFound) throw new PayloadBuildError(`compiling the guest helper ${name} needs gcc-12`, { hint: 'apt-get install gcc-12 libc6-dev', cause: error });
      const stderr = error instanceof CommandError ? (error.result?.stderr ?? '') : '';
      const first = stderr.split('\n').find((line) => /error/i.test(line)) ?? stderr.trim().split('\n').at(-1) ?? '';
      throw new PayloadBuildError(`compiling the guest helper ${name} failed: ${first.trim()}`, { hint: /cannot find -lc/.test(stderr) ? 'apt-get install libc6-dev (static glibc)' : `fix payload/helpers/${source}`, cause: error });
    }
    entries.push({ type: 'file', path: posix.join(GUEST_HELPER_DIR, name), mode: 0o755, data: await readFile(out) });
  }
  onProgress({ step: 'compile', message: `${sources.length} guest helper(s)`, done: sources.length, total: sources.length });
  return entries;
}
