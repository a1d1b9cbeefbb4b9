// Intelligent table mapping (seed 004): host resources appear to the guest
// under the names it expects. A rule names its host side portably
// (`{Documents}/Projects`, `~/src`), and this module turns that into this
// host's path using the host's own conventions (known-folders-*.ts). The live
// host is read once into a HostContext; everything after is pure.
import { lstatSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { homedir, userInfo } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { currentPlatform } from '../platform/current.ts';
import { liveSource } from '../platform/probe-source.ts';
import { isAbsoluteHostPath, pathModule } from './host-paths.ts';
import { pseudoMountPoints } from './pseudo-filesystems.ts';
import { isKnownFolderId, KNOWN_FOLDER_IDS, type KnownFolderScan } from './known-folders.ts';
import { knownFoldersDarwin } from './known-folders-darwin.ts';
import { knownFoldersLinux, userDirsFile } from './known-folders-linux.ts';
import { knownFoldersWindows, readUserShellFolders } from './known-folders-windows.ts';
import type { PathStyle, TableHost } from './rules.ts';

/** What the compiler may ask the host's file system (fakes in tests). */
export interface HostFsProbe {
  /** What is at `path`, following symlinks (a rule's root may be a symlink the host user made). */
  kind(path: string): 'dir' | 'file' | 'missing' | 'other';
  /** The path with every symlink resolved; undefined when it does not exist. */
  realpath(path: string): string | undefined;
}

export interface HostContext extends TableHost {
  env: Readonly<Record<string, string | undefined>>;
  knownFolders: KnownFolderScan;
  /** The stick's root, hidden from the guest. */
  stickRoot?: string;
  /** Linux: mount points of pseudo file systems, never served (pseudo-filesystems.ts). */
  pseudoMounts?: readonly string[];
  fs: HostFsProbe;
}

export type Expansion = { ok: true; hostPath: string; how: string } | { ok: false; reason: string };

/**
 * A rule's host side on this host: `{Documents}`, `{home}`, `~` (each with an
 * optional `/sub/path`, `/` or `\`), or an absolute host path. `..` is refused.
 */
export function expandHostTemplate(template: string, host: HostContext): Expansion {
  const mod = pathModule(host.pathStyle);
  const match = /^(?:\{([A-Za-z]+)\}|(~))(?:[\\/](.*))?$/.exec(template);
  let base: string;
  let how: string;
  let rest: string;
  if (match) {
    const token = match[1] ?? 'home';
    rest = match[3] ?? '';
    if (token.toLowerCase() === 'home') {
      base = host.home;
      how = 'the home folder';
    } else {
      const id = KNOWN_FOLDER_IDS.find((known) => known.toLowerCase() === token.toLowerCase());
      if (!id || !isKnownFolderId(id)) return { ok: false, reason: `{${token}} is not a known folder (known: home, ${KNOWN_FOLDER_IDS.join(', ')})` };
      const folder = host.knownFolders.folders[id];
      if (!folder) {
        const note = host.knownFolders.notes.find((n) => n.startsWith(`${id}:`));
        return { ok: false, reason: note ?? `this host has no ${id} folder` };
      }
      base = folder.hostPath;
      how = folder.how;
    }
  } else if (isAbsoluteHostPath(template, host.pathStyle)) {
    base = template;
    rest = '';
    how = 'an absolute host path';
  } else {
    return {
      ok: false,
      reason: `"${template}" is neither a known folder ({Documents}, ~, ...) nor an absolute ${host.pathStyle === 'win32' ? 'Windows' : 'host'} path`,
    };
  }
  const parts = rest.split(/[\\/]/).filter((part) => part !== '' && part !== '.');
  if (parts.includes('..') || base.split(/[\\/]/).includes('..')) return { ok: false, reason: `"${template}" climbs with ..` };
  return { ok: true, hostPath: mod.normalize(mod.join(base, ...parts)), how };
}

/** Flip the case of the letters of a name ('Home' → 'hOME'). */
function swapCase(name: string): string {
  return [...name].map((c) => (c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase())).join('');
}

/**
 * Whether the file system holding `dir` matches names case-insensitively:
 * the same directory reached by a case-flipped name. Undefined when the
 * name has no letters to flip or `dir` is missing.
 */
export function probeCaseInsensitive(dir: string): boolean | undefined {
  const name = basename(dir);
  const flipped = swapCase(name);
  if (flipped === name) return undefined;
  try {
    const a = lstatSync(dir, { bigint: true });
    try {
      const b = lstatSync(join(dirname(dir), flipped), { bigint: true });
      return a.ino === b.ino && a.dev === b.dev;
    } catch {
      return false;
    }
  } catch {
    return undefined;
  }
}

export const liveFsProbe: HostFsProbe = {
  kind(path) {
    try {
      const stat = statSync(path);
      return stat.isDirectory() ? 'dir' : stat.isFile() ? 'file' : 'other';
    } catch {
      return 'missing';
    }
  },
  realpath(path) {
    try {
      return realpathSync.native(path);
    } catch {
      return undefined;
    }
  },
};

export interface DiscoverOptions {
  stickRoot?: string;
  env?: Readonly<Record<string, string | undefined>>;
  /** Overrides os.homedir() (tests use a temporary HOME). */
  home?: string;
}

/** Read this host into a HostContext: OS, home, user, case rule, known folders. */
export async function discoverHostContext(options: DiscoverOptions = {}): Promise<HostContext> {
  const os = currentPlatform().os;
  const env = options.env ?? process.env;
  const pathStyle: PathStyle = os === 'windows' ? 'win32' : 'posix';
  const home = options.home ?? (os === 'windows' ? env['USERPROFILE'] : env['HOME']) ?? homedir();
  let user: string;
  try {
    user = userInfo().username;
  } catch {
    user = env['USER'] ?? env['USERNAME'] ?? 'unknown';
  }
  const caseInsensitive = probeCaseInsensitive(home) ?? os !== 'linux';
  let knownFolders: KnownFolderScan;
  if (os === 'linux') {
    const text = await readFile(userDirsFile(home, env), 'utf8').catch(() => undefined);
    knownFolders = knownFoldersLinux(home, env, text);
  } else if (os === 'darwin') {
    let names: string[] | undefined;
    try {
      names = readdirSync(home);
    } catch {
      names = undefined;
    }
    knownFolders = knownFoldersDarwin(home, names);
  } else {
    knownFolders = knownFoldersWindows(await readUserShellFolders(liveSource({ env: env as NodeJS.ProcessEnv })), env, home);
  }
  return {
    os,
    pathStyle,
    home,
    user,
    caseInsensitive,
    env,
    knownFolders,
    ...(options.stickRoot === undefined ? {} : { stickRoot: options.stickRoot }),
    ...(os === 'linux' ? { pseudoMounts: pseudoMountPoints(await readFile('/proc/self/mountinfo', 'utf8').catch(() => '')) } : {}),
    fs: liveFsProbe,
  };
}
