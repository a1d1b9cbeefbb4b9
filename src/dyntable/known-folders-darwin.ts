// macOS hosts: the known folders have fixed names in the home folder
// (Videos are ~/Movies); Finder shows localised names but the directories are
// English. The default file system (APFS) is case-insensitive, so the names
// are matched against the home listing without regard to case.
import { posix } from 'node:path';
import type { KnownFolderId, KnownFolderScan } from './known-folders.ts';

const DARWIN_NAMES: Record<KnownFolderId, string> = {
  Documents: 'Documents',
  Downloads: 'Downloads',
  Desktop: 'Desktop',
  Pictures: 'Pictures',
  Music: 'Music',
  Videos: 'Movies',
};

/**
 * `homeNames`: the names in the home folder (undefined if it could not be
 * listed); a folder whose name matches case-insensitively is used with the
 * spelling it actually has.
 */
export function knownFoldersDarwin(home: string, homeNames: readonly string[] | undefined): KnownFolderScan {
  const scan: KnownFolderScan = { folders: {}, notes: [] };
  for (const [id, name] of Object.entries(DARWIN_NAMES) as Array<[KnownFolderId, string]>) {
    const actual = homeNames?.find((candidate) => candidate.toLowerCase() === name.toLowerCase()) ?? name;
    scan.folders[id] = { id, hostPath: posix.join(home, actual), how: `macOS home layout ~/${actual}` };
  }
  return scan;
}
