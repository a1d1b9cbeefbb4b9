// `launcher make-stick DIR` run from a stick: copies every file of this
// stick's manifest (launchers, executables, QEMU, payloads) to DIR, checks the
// copies against the manifest, then writes the manifest itself, last, so an
// interrupted copy never looks complete. Nothing personal (users/) is copied.
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { StickError, StickTamperedError } from '../errors.ts';
import { replaceFileWith } from '../primitives/atomic-replace.ts';
import { stickLayout } from './layout.ts';
import { MANIFEST_PATH, describeProblems, readManifest, verifyAgainst } from './stick-manifest.ts';

export interface CloneProgress {
  step: 'copy' | 'verify';
  message: string;
  done?: number;
  total?: number;
  unit?: 'bytes';
}

export async function cloneStick(options: {
  from: string;
  to: string;
  onProgress?: (event: CloneProgress) => void;
}): Promise<{ files: number; bytes: number }> {
  const report = options.onProgress ?? (() => {});
  const manifest = await readManifest(options.from);
  if (!manifest)
    throw new StickError(
      `${options.from} has no ${MANIFEST_PATH}, so this launcher does not know which files make a stick`,
      'make sticks from a complete stick, or with `node build.js stick DIR` in a checkout',
    );
  const target = stickLayout(options.to);
  if (existsSync(options.to) && (await readdir(options.to)).length > 0 && !existsSync(target.marker)) {
    throw new StickError(`${options.to} is not empty and is not a pocketvm stick`, 'choose an empty folder');
  }
  const paths = Object.keys(manifest.files).sort();
  const total = paths.reduce((sum, p) => sum + manifest.files[p]!.bytes, 0);
  let done = 0;
  await rm(join(options.to, ...MANIFEST_PATH.split('/')), { force: true });
  for (const path of paths) {
    report({ step: 'copy', message: `copying ${paths.length} files to ${options.to}`, done, total, unit: 'bytes' });
    const from = join(options.from, ...path.split('/'));
    const to = join(options.to, ...path.split('/'));
    await mkdir(join(to, '..'), { recursive: true });
    try {
      await replaceFileWith(to, (temp) => copyFile(from, temp));
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOSPC') throw new StickError(`${options.to} is full while copying ${path}`, 'use a larger drive');
      if (code === 'ENOENT') throw new StickTamperedError(`${path} is missing from ${options.from}`, { hint: 'run `launcher verify` on it' });
      throw error;
    }
    done += manifest.files[path]!.bytes;
  }
  for (const dir of [target.usersRoot, target.runDir]) await mkdir(dir, { recursive: true });
  report({ step: 'verify', message: `checking the copy in ${options.to}`, done: total, total, unit: 'bytes' });
  const { problems } = await verifyAgainst(options.to, manifest);
  if (problems.length > 0)
    throw new StickTamperedError(`the copy in ${options.to} differs from the manifest: ${describeProblems(problems)}`, {
      hint: 'the source stick or the target drive is damaged; `launcher verify` on the source tells which',
    });
  await copyFile(join(options.from, ...MANIFEST_PATH.split('/')), join(options.to, ...MANIFEST_PATH.split('/')));
  return { files: paths.length, bytes: total };
}
