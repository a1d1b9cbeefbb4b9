// Creates the stick layout of DESIGN.md and puts a built payload on it, so the
// new stick boots on its own. Copies are atomic (temp + rename): an
// interrupted init never leaves a file that looks complete.
import { copyFile, mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { StickError } from '../errors.ts';
import { CHECKSUM_FILE, openGuestPayload } from '../payload/guest-payload.ts';
import { STICK_FORMAT, type StickLayout, stickLayout } from './layout.ts';
import { acquireLock } from './lock.ts';

export interface InitProgress {
  step: 'layout' | 'copy' | 'verify';
  message: string;
  done?: number;
  total?: number;
  unit?: 'bytes';
}

export interface InitStickOptions {
  root: string;
  /** Where built payloads are: payload/<guest>/ with SHA256SUMS. */
  sourcePayloadRoot: string;
  guests: string[];
  version: string;
  onProgress?: (event: InitProgress) => void;
}

const STICK_README = `This is a pocketvm stick: a personal computer that lives on this drive.

Run \`launcher\` (Linux, macOS) or \`launcher.cmd\` (Windows) from this folder.
Your guest's files live in users/; nothing is written to the computer you plug into.
`;

async function copyAtomic(source: string, target: string): Promise<void> {
  const temp = `${target}.partial`;
  try {
    await copyFile(source, temp);
    await rename(temp, target);
  } catch (error) {
    await rm(temp, { force: true });
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOSPC') throw new StickError(`the stick is full while copying ${target}`, 'free some space on the stick and run init-stick again');
    throw error;
  }
}

export async function initStick(options: InitStickOptions): Promise<StickLayout> {
  const layout = stickLayout(options.root);
  const report = options.onProgress ?? (() => {});
  if (existsSync(options.root) && !existsSync(layout.marker)) {
    const entries = await readdir(options.root);
    if (entries.length > 0) {
      throw new StickError(`${options.root} is not empty and is not a pocketvm stick`, 'choose an empty folder, or the root of a stick made by init-stick');
    }
  }
  report({ step: 'layout', message: `creating the stick layout in ${options.root}` });
  for (const dir of [join(options.root, '.pocketvm'), layout.payloadRoot, layout.usersRoot, layout.runDir]) {
    await mkdir(dir, { recursive: true });
  }
  // Never rewrite a payload under a running guest.
  const lock = await acquireLock(layout, 'init-stick');
  try {
    await writeFile(layout.marker, `${JSON.stringify({ format: STICK_FORMAT, createdBy: `pocketvm ${options.version}` }, null, 2)}\n`);
    await writeFile(join(options.root, 'README.txt'), STICK_README);
    for (const guest of options.guests) await copyGuest(options, layout, guest, report);
  } finally {
    await lock.release();
  }
  return layout;
}

async function copyGuest(options: InitStickOptions, layout: StickLayout, guest: string, report: (event: InitProgress) => void): Promise<void> {
  // Verify the source first: never copy a corrupt payload onto a stick.
  report({ step: 'verify', message: `checking the built payload of ${guest}` });
  const source = await openGuestPayload(options.sourcePayloadRoot, guest);
  const targetDir = join(layout.payloadRoot, guest);
  await mkdir(targetDir, { recursive: true });
  // SHA256SUMS goes last: until it is there the copy is visibly incomplete.
  // registry.reg: the guest registry's defaults layer (src/guestregistry), when the payload has one.
  const files = [source.manifest.kernel, source.manifest.initrd, 'guest.json', ...(existsSync(join(source.dir, 'registry.reg')) ? ['registry.reg'] : []), CHECKSUM_FILE];
  const sizes = await Promise.all(files.map(async (name) => (await stat(join(source.dir, name))).size));
  const total = sizes.reduce((a, b) => a + b, 0);
  let done = 0;
  await rm(join(targetDir, CHECKSUM_FILE), { force: true });
  for (const [index, name] of files.entries()) {
    report({ step: 'copy', message: `copying ${guest}/${name}`, done, total, unit: 'bytes' });
    await copyAtomic(join(source.dir, name), join(targetDir, name));
    done += sizes[index]!;
  }
  report({ step: 'copy', message: `copied ${guest}`, done, total, unit: 'bytes' });
  await openGuestPayload(layout.payloadRoot, guest);
}
