// Creates the stick layout of docs/design.md and puts a built payload on it, so the
// new stick boots on its own. Copies are atomic (temp + rename): an
// interrupted init never leaves a file that looks complete.
import { copyFile, mkdir, readdir, rm, stat, statfs, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { StickError, StickLockedError, UsageError } from '../errors.ts';
import { replaceFileWith } from '../primitives/atomic-replace.ts';
import { CHECKSUM_FILE, openGuestPayload } from '../payload/guest-payload.ts';
import { platformOf } from '../platform/current.ts';
import { STICK_FORMAT, type StickLayout, stickLayout } from './layout.ts';
import { removeUnusedBases } from './system-bases.ts';
import { acquireLock } from './lock.ts';
import { assertWritable } from './stick-root.ts';

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
  try {
    await replaceFileWith(target, (temp) => copyFile(source, temp));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOSPC') throw new StickError(`the stick is full while copying ${target}`, 'free some space on the stick and run init-stick again');
    throw error;
  }
}

/**
 * Linux pseudo file systems (statfs f_type): no stick can live there, and
 * some (/proc) make a recursive mkdir spin forever instead of failing.
 */
const PSEUDO_FILE_SYSTEMS = new Map<number, string>([
  [0x9fa0, 'proc'],
  [0x62656572, 'sysfs'],
  [0x1cd1, 'devpts'],
  [0x27e0eb, 'cgroup'],
  [0x63677270, 'cgroup2'],
  [0x64626720, 'debugfs'],
  [0x73636673, 'securityfs'],
  [0x74726163, 'tracefs'],
  [0xcafe4a11, 'bpf'],
  [0x62656570, 'configfs'],
  [0x6165676c, 'pstore'],
  [0xde5e81e4, 'efivarfs'],
  [0x19800202, 'mqueue'],
  [0x42494e4d, 'binfmt_misc'],
  [0x65735543, 'fusectl'],
]);

/** Refuses a root that is a file, or that would be made inside a pseudo file system. */
async function checkRoot(root: string): Promise<void> {
  let existing = root;
  for (;;) {
    try {
      const info = await stat(existing);
      if (existing === root && !info.isDirectory()) throw new UsageError(`${root} is a file, not a folder`, 'name a new or empty folder for the stick');
      break;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw error;
      if (code === 'ENOTDIR') throw new UsageError(`${root}: a file is where a folder was expected`, 'name a new or empty folder for the stick');
      if (dirname(existing) === existing) break;
      existing = dirname(existing);
    }
  }
  await assertWritable(existing);
  if (!platformOf()?.statfsPseudoFileSystems) return;
  const kind = PSEUDO_FILE_SYSTEMS.get(Number((await statfs(existing)).type));
  if (kind)
    throw new UsageError(
      `${root} is on ${kind}, a pseudo file system of the kernel: a stick cannot be made there`,
      'name a folder on the USB stick (or another real disk)',
    );
}

/** What a failed first init made: removed, so a half-made stick does not stay behind. */
async function removeHalfMade(root: string, rootExisted: boolean): Promise<void> {
  if (!rootExisted) {
    await rm(root, { recursive: true, force: true });
    return;
  }
  for (const name of ['.pocketvm', 'payload', 'users', 'run', 'README.txt']) await rm(join(root, name), { recursive: true, force: true });
}

export async function initStick(options: InitStickOptions): Promise<StickLayout> {
  const layout = stickLayout(options.root);
  const report = options.onProgress ?? (() => {});
  await checkRoot(options.root);
  const rootExisted = existsSync(options.root);
  const fresh = !existsSync(layout.marker);
  if (rootExisted && fresh) {
    const entries = await readdir(options.root);
    if (entries.length > 0) {
      throw new StickError(`${options.root} is not empty and is not a pocketvm stick`, 'choose an empty folder, or the root of a stick made by init-stick');
    }
  }
  report({ step: 'layout', message: `creating the stick layout in ${options.root}` });
  let lock;
  try {
    for (const dir of [join(options.root, '.pocketvm'), layout.payloadRoot, layout.usersRoot, layout.runDir]) {
      await mkdir(dir, { recursive: true });
    }
    // Never rewrite a payload under a running guest.
    lock = await acquireLock(layout, 'init-stick');
  } catch (error) {
    // Another init-stick holding the lock is making this very stick: leave its work alone.
    if (fresh && !(error instanceof StickLockedError)) await removeHalfMade(options.root, rootExisted).catch(() => {});
    throw error;
  }
  try {
    await writeFile(layout.marker, `${JSON.stringify({ format: STICK_FORMAT, createdBy: `pocketvm ${options.version}` }, null, 2)}\n`);
    await writeFile(join(options.root, 'README.txt'), STICK_README);
    for (const guest of options.guests) await copyGuest(options, layout, guest, report);
  } catch (error) {
    await lock.release().catch(() => {});
    // A first init that failed (a full disk, a pulled stick) leaves nothing
    // that looks like a stick; a refresh of a real stick keeps its users.
    if (fresh) await removeHalfMade(options.root, rootExisted).catch(() => {});
    throw error;
  }
  await lock.release();
  return layout;
}

async function copyGuest(options: InitStickOptions, layout: StickLayout, guest: string, report: (event: InitProgress) => void): Promise<void> {
  // Verify the source first: never copy a corrupt payload onto a stick.
  report({ step: 'verify', message: `checking the built payload of ${guest}` });
  const source = await openGuestPayload(options.sourcePayloadRoot, guest, { base: 'full' });
  const targetDir = join(layout.payloadRoot, guest);
  await mkdir(targetDir, { recursive: true });
  // SHA256SUMS goes last: until it is there the copy is visibly incomplete.
  // registry.reg: the guest registry's defaults layer (src/guestregistry), when the payload has one.
  // An image guest's base is content-addressed: one already on the stick under its name is that base (checked below) and not copied again.
  const base = source.manifest.image?.file;
  const copyBase = base !== undefined && !existsSync(join(targetDir, base));
  const files = [
    source.manifest.kernel,
    source.manifest.initrd,
    ...(copyBase ? [base] : []),
    // The base's block list (docs/images.md, "How the base is checked"), small: always copied.
    ...(source.manifest.image?.blocks ? [source.manifest.image.blocks.file] : []),
    'guest.json',
    ...(existsSync(join(source.dir, 'registry.reg')) ? ['registry.reg'] : []),
    CHECKSUM_FILE,
  ];
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
  await openGuestPayload(layout.payloadRoot, guest, { base: 'full' });
  if (base) await removeUnusedBases(layout, guest, base);
}
