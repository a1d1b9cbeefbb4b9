// The well-known host folders the guest sees under stable names, whatever the
// host calls them (a German XDG desktop's ~/Dokumente, a Windows Documents
// folder redirected to OneDrive, macOS's ~/Movies): intelligent table mapping
// in the seed's words. Each host OS finds them by its own convention in its
// own file (known-folders-linux.ts, -windows.ts, -darwin.ts); this file holds
// what they share.

export const KNOWN_FOLDER_IDS = ['Documents', 'Downloads', 'Desktop', 'Pictures', 'Music', 'Videos'] as const;
export type KnownFolderId = (typeof KNOWN_FOLDER_IDS)[number];

export interface KnownFolder {
  id: KnownFolderId;
  /** Absolute host path, as the host names it. */
  hostPath: string;
  /** How it was found, for `tables explain`: "XDG_DOCUMENTS_DIR in ~/.config/user-dirs.dirs". */
  how: string;
}

export interface KnownFolderScan {
  folders: Partial<Record<KnownFolderId, KnownFolder>>;
  /** Folders deliberately not mapped, and why (e.g. "XDG_MUSIC_DIR is the home folder itself"). */
  notes: string[];
}

export function isKnownFolderId(name: string): name is KnownFolderId {
  return (KNOWN_FOLDER_IDS as readonly string[]).includes(name);
}

/** Guest name of a known folder: /host/Documents, the same on every host. */
export function knownFolderGuestPath(mountPoint: string, id: KnownFolderId): string {
  return `${mountPoint}/${id}`;
}
