// Windows hosts: the known folders are the values of
// HKCU\Software\Microsoft\Windows\CurrentVersion\Explorer\User Shell Folders
// (REG_EXPAND_SZ like %USERPROFILE%\Documents, or redirected, e.g. to
// OneDrive), read through the host probe's registry source (registry-js, else
// `reg query`); without either, %USERPROFILE%\<Name>.
import { win32 } from 'node:path';
import type { ProbeSource } from '../platform/probe-source.ts';
import type { KnownFolderId, KnownFolderScan } from './known-folders.ts';

export const USER_SHELL_FOLDERS_KEY = 'Software\\Microsoft\\Windows\\CurrentVersion\\Explorer\\User Shell Folders';

/** Value names under User Shell Folders (the Downloads one is its KNOWNFOLDERID). */
const VALUE_NAMES: Record<KnownFolderId, string> = {
  Documents: 'Personal',
  Downloads: '{374DE290-123F-4565-9164-39C4925E467B}',
  Desktop: 'Desktop',
  Pictures: 'My Pictures',
  Music: 'My Music',
  Videos: 'My Video',
};

/** Expand %NAME% from `env` (names case-insensitive, as Windows does); unknown names stay. */
export function expandWindowsEnv(value: string, env: Readonly<Record<string, string | undefined>>): string {
  const folded = new Map(Object.entries(env).map(([k, v]) => [k.toUpperCase(), v]));
  return value.replace(/%([^%]+)%/g, (whole, name: string) => folded.get(name.toUpperCase()) ?? whole);
}

/**
 * The known folders from User Shell Folders `values` (name → raw data; names
 * compared case-insensitively) and the environment (USERPROFILE, ...).
 */
export function knownFoldersWindows(
  values: ReadonlyMap<string, string> | undefined,
  env: Readonly<Record<string, string | undefined>>,
  home: string,
): KnownFolderScan {
  const scan: KnownFolderScan = { folders: {}, notes: [] };
  const byName = new Map([...(values ?? new Map<string, string>())].map(([k, v]) => [k.toLowerCase(), v]));
  for (const [id, valueName] of Object.entries(VALUE_NAMES) as Array<[KnownFolderId, string]>) {
    const raw = byName.get(valueName.toLowerCase());
    if (raw !== undefined) {
      const expanded = expandWindowsEnv(raw, env);
      if (/%[^%]+%/.test(expanded) || !win32.isAbsolute(expanded)) {
        scan.notes.push(`${id}: User Shell Folders\\${valueName} = ${raw} does not expand to an absolute path, not mapped`);
        continue;
      }
      if (win32.normalize(expanded).toLowerCase() === win32.normalize(home).toLowerCase()) {
        scan.notes.push(`${id}: User Shell Folders\\${valueName} is the profile folder itself, not mapped`);
        continue;
      }
      scan.folders[id] = { id, hostPath: win32.normalize(expanded), how: `User Shell Folders\\${valueName} = ${raw}` };
    } else {
      scan.folders[id] = {
        id,
        hostPath: win32.join(home, id),
        how: values === undefined ? `default %USERPROFILE%\\${id} (registry not readable)` : `default %USERPROFILE%\\${id} (not in User Shell Folders)`,
      };
    }
  }
  return scan;
}

/**
 * Read User Shell Folders through the host probe's registry source (registry-js,
 * else `reg query`); undefined when neither works.
 */
export async function readUserShellFolders(source: Pick<ProbeSource, 'registryValues'>): Promise<Map<string, string> | undefined> {
  const values = await source.registryValues(`HKCU\\${USER_SHELL_FOLDERS_KEY}`);
  if (!values) return undefined;
  return new Map(values.filter((v) => typeof v.data === 'string').map((v) => [v.name, v.data as string]));
}
