// Which stick a command works on: --stick DIR, else the stick the launcher
// itself sits on, else (in a development checkout) ./demo-stick.
import { constants, existsSync } from 'node:fs';
import { access, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { StickError } from '../errors.ts';
import { codeRoot as selfRoot, packaged } from '../runtime/self.ts';
import { STICK_FORMAT, type StickLayout, stickLayout } from './layout.ts';

/** The repository (or stick) root this code runs from (src/runtime/self.ts). */
export const codeRoot = selfRoot;

/** A development checkout has the sources and build.js next to the launcher. */
export function isDevCheckout(root: string = codeRoot): boolean {
  return !packaged && existsSync(join(root, 'build.js')) && existsSync(join(root, 'src', 'cli'));
}

export const DEMO_STICK_NAME = 'demo-stick';

export function defaultStickRoot(): string {
  if (isDevCheckout()) return join(codeRoot, DEMO_STICK_NAME);
  return codeRoot;
}

export function resolveStickRoot(option: string | undefined): string {
  return option ? resolve(option) : defaultStickRoot();
}

/** Opens an existing stick, refusing a directory that is not one. */
export async function openStick(root: string): Promise<StickLayout> {
  const layout = stickLayout(root);
  let marker: { format?: unknown };
  try {
    marker = JSON.parse(await readFile(layout.marker, 'utf8')) as { format?: unknown };
  } catch {
    throw new StickError(
      `${root} is not a pocketvm stick (no .pocketvm/stick.json)`,
      'create one with `launcher init-stick DIR`, or pass the right folder with --stick',
    );
  }
  if (marker.format !== STICK_FORMAT) {
    throw new StickError(
      `${root} has stick format ${String(marker.format)}; this launcher reads format ${STICK_FORMAT}`,
      'use the launcher that is on that stick',
    );
  }
  return layout;
}

/**
 * Refuses a folder on a read-only file system (a write-protected stick, a
 * read-only mount) before anything is attempted there: otherwise the first
 * write fails with EROFS, or a recursive mkdir with a misleading ENOENT.
 */
export async function assertWritable(dir: string): Promise<void> {
  try {
    await access(dir, constants.W_OK);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EROFS') {
      throw new StickError(
        `${dir} is on a read-only file system; nothing was changed`,
        'the stick is write-protected or mounted read-only: make it writable (its lock switch, or remount it read-write) and try again',
      );
    }
    // Anything else (missing, no permission) is reported by the write that follows.
  }
}
