// Everything that differs between the OSes pocketvm runs on, as one record
// per OS (linux.ts, windows.ts, darwin.ts), chosen once by current.ts. The
// rest of the code asks the record a question named for what it needs
// ("is there /proc/self/fd?", "where does QEMU's folder on the stick live?")
// and never which OS it is on, as Lima keeps its platform code in files named
// for the platform and chooses them in one place. Reading the host's facts
// (CPU, memory, accelerators, display) is src/hostprobe/'s, through an
// adapter per OS that extends this record (hostprobe/host-adapter.ts).

/** The host OS families pocketvm knows. */
export type HostOs = 'linux' | 'windows' | 'darwin';

export interface HostPlatform {
  os: HostOs;
  /** Node's name for this OS (`process.platform`). */
  nodePlatform: NodeJS.Platform;
  /** Platform folder name for bundled binaries: `.pocketvm/qemu/<platform>/`. */
  platform: string;
  /** Folder of the launcher executable and its native addons on a stick: `.pocketvm/bin/<binFolder>/` (this process's CPU architecture). */
  binFolder: string;
  executableSuffix: '' | '.exe';
  /** One line telling a person how to get QEMU on this kind of host. */
  qemuInstallHint: string;
  /** Whether paths on this host compare case-insensitively (mount point matching). */
  caseInsensitivePaths: boolean;
  /**
   * Wraps the QEMU command so that QEMU dies with the launcher, even when the
   * launcher is killed with SIGKILL and cannot clean up.
   */
  orphanGuard(command: string, args: string[]): { command: string; args: string[] };
  /**
   * Where a session's control server listens: a UNIX socket inside a fresh
   * directory only this user can enter (removed at teardown), or a named pipe
   * with an unguessable name.
   */
  controlEndpoint(): Promise<{ path: string; privateDir?: string }>;

  /**
   * How the launcher keeps its own memory out of dumps (src/runtime/not-dumpable.ts):
   * prctl(PR_SET_DUMPABLE, 0) on Linux, setrlimit(RLIMIT_CORE, 0) on macOS (no
   * dumpable flag there), nothing on Windows (crash dumps are Windows Error
   * Reporting's, configured per machine).
   */
  dumpGuard: 'prctl' | 'setrlimit' | 'none';
  /** The C library koffi loads for those calls. */
  libc: string;
  /** /proc/self/coredump_filter and prlimit(1) aimed at this process turn core dumps off (src/runtime/no-core-dumps.ts). */
  procCoreDumpControls: boolean;
  /** A host QEMU is made not dumpable by the checkout's LD_PRELOAD object (src/vmm/qemu-binary.ts, build/stick/no-dump-preload.ts). */
  qemuNoDumpPreload: boolean;
  /** The host's Secret Service is reached over the D-Bus session bus, so without one there is no keychain (src/auth/keychain.ts). */
  keychainNeedsSessionBus: boolean;
  /** statfs(2)'s f_type names the kernel's pseudo file systems (proc, sysfs, tmpfs …) where a stick must not be made (src/stick/init-stick.ts). */
  statfsPseudoFileSystems: boolean;
  /** /sys/dev/block maps a device number to its block device, so the presence monitor can watch it (src/stick/presence-io.ts). */
  sysfsBlockDevices: boolean;
  /** /proc/self/mountinfo lists this process's mounts (src/dyntable/host-fs-pool.ts). */
  procMountinfo: boolean;
  /** /proc/self/fd/N names an open descriptor, so a directory is read through the handle that was checked, not its path again. */
  procSelfFd: boolean;
  /** The file manager a person opens a `files share` with, so its hint names the right steps (src/appliance/source-share.ts). */
  shareFileManager: 'explorer' | 'finder' | 'gnome-files';
  /**
   * The command that sets one extended attribute (value in hex) on a local
   * file, or undefined where the host has none the launcher can set
   * (`files get` carrying user.* xattrs: src/appliance/local-xattrs.ts).
   */
  setXattrCommand(path: string, name: string, hex: string): { command: string; args: string[] } | undefined;
  /** link(2) on a symlink links the symlink itself (Linux); elsewhere it follows it, so such a link is refused. */
  hardLinksSymlinks: boolean;
  /** Windows file semantics: reserved names and characters, no chmod, no FIFOs (src/dyntable/confined-fs.ts). */
  windowsFileSystem: boolean;
  /** The guest's RAM can be an unnamed file in /dev/shm (src/vmm/guest-ram.ts). */
  guestRamInDevShm: boolean;
  /**
   * How to open an address in the host's default browser (the console page),
   * or undefined where there is none to open (a Linux host with no graphical
   * session): the launcher then prints the address.
   */
  openBrowser(url: string, env: NodeJS.ProcessEnv): { command: string; args: string[] } | undefined;
  /** QEMU's own window on this OS (`run --display window`), if the QEMU build has it. */
  windowDisplays: readonly string[];
}
