// Native addons (argon2, usb, drivelist, a keychain: none yet) cannot live
// inside the single executable, and must never be unpacked into the host's
// temp directory. On a stick they travel beside the executable, one folder per
// platform (`.pocketvm/bin/<platform>/<name>.node`), and are loaded from
// there; from source they come from node_modules as usual.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { PocketError } from '../errors.ts';
import { codeRoot, executableAddonDir, packaged } from './self.ts';

export interface AddonLocation {
  /** Where the executable's addons are: `.pocketvm/bin/<platform>/` (src/runtime/self.ts). */
  executableDir: string;
  packaged: boolean;
  /** For source runs: the folder whose node_modules resolves packages. */
  codeRoot: string;
}

const here: AddonLocation = { executableDir: executableAddonDir, packaged, codeRoot };

/** The file name an addon has beside the executable: `argon2` → `argon2.node`. */
export function addonFileName(name: string): string {
  if (!/^[a-z0-9][a-z0-9._-]*$/i.test(name)) throw new PocketError('internal', `"${name}" is not an addon name`);
  return `${name}.node`;
}

/**
 * Where the addon `name` is loaded from: beside the executable when packaged,
 * else the path `sourceSpecifier` (a package or file, default `name`)
 * resolves to from the checkout's node_modules.
 */
export function resolveAddon(name: string, sourceSpecifier: string = name, location: AddonLocation = here): string {
  if (location.packaged) {
    const path = join(location.executableDir, addonFileName(name));
    if (!existsSync(path)) {
      throw new PocketError('stick', `the native addon ${addonFileName(name)} is missing beside the launcher in ${location.executableDir}`, {
        hint: 'this stick has no such addon for this computer, or it was damaged (launcher verify names what is missing)',
        details: { addon: name, path },
      });
    }
    return path;
  }
  return createRequire(join(location.codeRoot, 'package.json')).resolve(sourceSpecifier);
}

/** Loads a native addon from where resolveAddon says it is. */
export function loadAddon<T>(name: string, sourceSpecifier: string = name, location: AddonLocation = here): T {
  // createRequire works inside the single executable too, where the bundled
  // code's own `require` only reaches built-in modules.
  const path = resolveAddon(name, sourceSpecifier, location);
  return createRequire(join(location.packaged ? location.executableDir : location.codeRoot, 'noop.js'))(path) as T;
}
