// Linux (and other XDG) hosts: the user directories are named in
// $XDG_CONFIG_HOME/user-dirs.dirs (xdg-user-dirs), localised by the desktop
// (XDG_DOCUMENTS_DIR="$HOME/Dokumente"). A key set to $HOME itself means "this
// folder is disabled" and is never mapped (it would expose the whole home).
import { posix } from 'node:path';
import type { KnownFolderId, KnownFolderScan } from './known-folders.ts';

const XDG_KEYS: Record<string, KnownFolderId> = {
  XDG_DOCUMENTS_DIR: 'Documents',
  XDG_DOWNLOAD_DIR: 'Downloads',
  XDG_DESKTOP_DIR: 'Desktop',
  XDG_PICTURES_DIR: 'Pictures',
  XDG_MUSIC_DIR: 'Music',
  XDG_VIDEOS_DIR: 'Videos',
};

/** Where user-dirs.dirs lives for this environment. */
export function userDirsFile(home: string, env: Readonly<Record<string, string | undefined>>): string {
  const configHome = env['XDG_CONFIG_HOME'] && posix.isAbsolute(env['XDG_CONFIG_HOME']) ? env['XDG_CONFIG_HOME'] : posix.join(home, '.config');
  return posix.join(configHome, 'user-dirs.dirs');
}

/** Undo the shell quoting xdg-user-dirs writes: "..." with \" \$ \\ \` escapes. */
function unquote(raw: string): string | undefined {
  const match = /^"((?:[^"\\]|\\.)*)"\s*$/.exec(raw.trim());
  if (!match) return undefined;
  return match[1]!.replace(/\\(.)/g, '$1');
}

/**
 * Parse user-dirs.dirs. Values are "$HOME/rel" or an absolute path; anything
 * else is ignored, as xdg-user-dir does.
 */
export function parseUserDirs(text: string, home: string): Map<KnownFolderId, { path: string; key: string }> {
  const found = new Map<KnownFolderId, { path: string; key: string }>();
  for (const line of text.split(/\r?\n/)) {
    const match = /^\s*(XDG_[A-Z]+_DIR)\s*=\s*(.*)$/.exec(line);
    if (!match) continue;
    const id = XDG_KEYS[match[1]!];
    const value = unquote(match[2]!);
    if (!id || value === undefined) continue;
    let path: string | undefined;
    if (value === '$HOME' || value.startsWith('$HOME/')) path = posix.join(home, value.slice('$HOME'.length));
    else if (value.startsWith('/')) path = posix.normalize(value);
    if (path !== undefined) found.set(id, { path: path.length > 1 ? path.replace(/\/+$/, '') : path, key: match[1]! });
  }
  return found;
}

/**
 * The known folders of an XDG host. `userDirsText` is the content of
 * user-dirs.dirs (undefined when absent); without an entry a folder falls back
 * to its English default (~/Documents, ...), which the caller keeps only if it
 * exists.
 */
export function knownFoldersLinux(home: string, env: Readonly<Record<string, string | undefined>>, userDirsText: string | undefined): KnownFolderScan {
  const scan: KnownFolderScan = { folders: {}, notes: [] };
  const file = userDirsFile(home, env);
  const configured = userDirsText === undefined ? new Map() : parseUserDirs(userDirsText, home);
  for (const id of Object.values(XDG_KEYS)) {
    const entry = configured.get(id);
    if (entry) {
      if (posix.normalize(entry.path) === posix.normalize(home)) {
        scan.notes.push(`${id}: ${entry.key} is the home folder itself (disabled), not mapped`);
        continue;
      }
      scan.folders[id] = { id, hostPath: entry.path, how: `${entry.key} in ${file}` };
    } else {
      scan.folders[id] = {
        id,
        hostPath: posix.join(home, id),
        how: userDirsText === undefined ? `default ~/${id} (no ${file})` : `default ~/${id} (not set in ${file})`,
      };
    }
  }
  return scan;
}
