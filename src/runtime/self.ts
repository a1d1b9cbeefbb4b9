// Where the running launcher's own files are. Two ways to run: from the
// sources under Node 24 (a checkout), or as the self-contained executable on a
// stick (`.pocketvm/bin/<platform>/launcher`, a Node single-executable
// application). Everything that depends on which one lives here, so the rest
// of the code never asks.
import { basename, dirname, join, resolve } from 'node:path';
import { isSea } from 'node:sea';
import { fileURLToPath } from 'node:url';
import { binFolder } from '../platform/current.ts';

// Baked in by the executable build (esbuild `define`); absent from source.
declare const POCKETVM_BAKED_VERSION: string | undefined;

/** True inside the built executable. */
export const packaged: boolean = isSea();

/** The version the executable was built as; undefined when running from source. */
export const bakedVersion: string | undefined = typeof POCKETVM_BAKED_VERSION === 'string' ? POCKETVM_BAKED_VERSION : undefined;

/** The folder the running executable's native addons are in (src/runtime/native-addon.ts). */
export const executableAddonDir: string = addonDirOfExecutable(process.execPath);

/**
 * The stick root of an executable at `executablePath`: three levels up from
 * `.pocketvm/bin/<platform>/launcher`, or its own folder for a copy at the
 * root (`launcher.exe` on Windows).
 */
export function stickRootOfExecutable(executablePath: string): string {
  const dir = dirname(executablePath);
  return insideBinFolder(executablePath) ? resolve(dir, '..', '..', '..') : dir;
}

function insideBinFolder(executablePath: string): boolean {
  const dir = dirname(executablePath);
  return basename(dirname(dirname(dir))) === '.pocketvm' && basename(dirname(dir)) === 'bin';
}

/**
 * Where the executable's native addons are: its own folder under
 * `.pocketvm/bin/<platform>/`; for the copy at the stick root (`launcher.exe`),
 * the folder of the executable it is a copy of.
 */
export function addonDirOfExecutable(executablePath: string, platform: string = binFolder()): string {
  if (insideBinFolder(executablePath)) return dirname(executablePath);
  return join(dirname(executablePath), '.pocketvm', 'bin', platform);
}

/** The repository (source run) or stick (executable) root this code runs from. */
export const codeRoot: string = packaged ? stickRootOfExecutable(process.execPath) : resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** How to start this launcher again in a child process (e.g. the detached session). */
export function selfCommand(): { command: string; args: string[] } {
  if (packaged) return { command: process.execPath, args: [] };
  return { command: process.execPath, args: [...process.execArgv, join(codeRoot, 'src', 'cli', 'main.ts')] };
}
