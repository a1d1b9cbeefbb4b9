// What no table entry ever serves, confirmed or not: the kernel's pseudo and
// device file systems and the OS's device and named-pipe namespaces. They are
// not files a person keeps; they are the host itself: /proc/<pid>/environ
// and /proc/self/mem hold other programs' secrets (the launcher's own key
// material among them), /sys and /dev reach hardware, /run holds sockets and
// session secrets, macOS swap and sleep images hold RAM.
//
// Two mechanisms, both pure (the host facts come in as data):
// - pseudoFsExclusions: non-exposable default exclusions (exclusions.ts), so
//   the compiler refuses a rule at or inside one, and the namespace backend
//   hides them inside any rule that contains them (a confirmed rule for `/`
//   still shows no /proc), also when reached through a symlink: the backend
//   matches exclusions under their real paths and never follows a symlink
//   inside a root. On Linux every mount of a pseudo file system type found in
//   /proc/self/mountinfo is added too (procfs bind-mounted elsewhere).
// - deviceNamespaceReason: Windows paths that are not files at all
//   (`\\.\PhysicalDrive0`, `\\?\GLOBALROOT\Device\...`, `\\.\pipe\x`,
//   `\\server\pipe\x`, `CON`, alternate data streams), refused before the
//   host is even asked what is there.
import { pathModule } from './host-paths.ts';
import type { Exclusion, PathStyle } from './rules.ts';

export interface PseudoFsHost {
  os: 'linux' | 'windows' | 'darwin';
  pathStyle: PathStyle;
  env: Readonly<Record<string, string | undefined>>;
  /** Linux: mount points of pseudo file systems (pseudoMountPoints of /proc/self/mountinfo). */
  pseudoMounts?: readonly string[];
}

type Item = [id: string, path: string, reason: string];

const LINUX: Item[] = [
  ['proc', '/proc', "the kernel's process information (procfs: other programs' memory and environment)"],
  ['sys', '/sys', "the kernel's device and driver tree (sysfs)"],
  ['dev', '/dev', 'device files'],
  ['run', '/run', 'runtime state: sockets, session secrets (tmpfs)'],
  ['var-run', '/var/run', 'runtime state: sockets, session secrets'],
  ['var-lock', '/var/lock', 'runtime lock files'],
];

const DARWIN: Item[] = [
  ['dev', '/dev', 'device files (devfs)'],
  ['vol', '/.vol', 'the volume-by-id namespace (volfs)'],
  ['var-run', '/private/var/run', 'runtime state: sockets, session secrets'],
  ['var-run-link', '/var/run', 'runtime state: sockets, session secrets'],
  ['vm', '/private/var/vm', 'swap files and the sleep image (RAM contents)'],
  ['vm-link', '/var/vm', 'swap files and the sleep image (RAM contents)'],
  ['vm-volume', '/System/Volumes/VM', 'swap files and the sleep image (RAM contents)'],
];

// Files at the root of the system drive that hold RAM contents.
const WINDOWS_SYSTEM_DRIVE: Item[] = [
  ['pagefile', 'pagefile.sys', 'the page file (RAM contents)'],
  ['hiberfil', 'hiberfil.sys', 'the hibernation file (RAM contents)'],
  ['swapfile', 'swapfile.sys', 'the swap file (RAM contents)'],
];

/** File system types whose mounts are never served (Linux /proc/self/mountinfo names). */
export const PSEUDO_FS_TYPES: ReadonlySet<string> = new Set([
  'proc',
  'sysfs',
  'devtmpfs',
  'devpts',
  'debugfs',
  'tracefs',
  'securityfs',
  'cgroup',
  'cgroup2',
  'pstore',
  'bpf',
  'configfs',
  'fusectl',
  'mqueue',
  'binfmt_misc',
  'efivarfs',
  'hugetlbfs',
  'rpc_pipefs',
  'nsfs',
  'selinuxfs',
  'autofs',
]);

/** The pseudo and device file systems of a host, as exclusions no rule can lift. */
export function pseudoFsExclusions(host: PseudoFsHost): Exclusion[] {
  const make = (id: string, hostPath: string, reason: string): Exclusion => ({
    id: `pseudo-${id}`,
    category: 'pseudo-fs',
    hostPath,
    except: [],
    reason,
    exposable: false,
  });
  if (host.os === 'linux') {
    const list = LINUX.map(([id, path, reason]) => make(id, path, reason));
    const covered = (path: string) => list.some((e) => path === e.hostPath || path.startsWith(`${e.hostPath}/`));
    let n = 0;
    for (const mount of host.pseudoMounts ?? [])
      if (mount !== '/' && !covered(mount)) list.push(make(`mount-${++n}`, mount, 'a pseudo file system mounted here'));
    return list;
  }
  if (host.os === 'darwin') return DARWIN.map(([id, path, reason]) => make(id, path, reason));
  const drive = /^[A-Za-z]:$/.test(host.env['SystemDrive'] ?? '') ? host.env['SystemDrive']! : 'C:';
  const mod = pathModule('win32');
  return WINDOWS_SYSTEM_DRIVE.map(([id, name, reason]) => make(id, mod.join(`${drive}\\`, name), reason));
}

/** Unescape a mountinfo field (`\040` is a space). */
function unescapeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

/** The mount points of pseudo file systems in the text of /proc/self/mountinfo. */
export function pseudoMountPoints(mountinfo: string): string[] {
  const points: string[] = [];
  for (const line of mountinfo.split('\n')) {
    const fields = line.split(' ');
    const dash = fields.indexOf('-');
    if (dash < 5 || fields.length < dash + 2) continue;
    const type = fields[dash + 1]!;
    const base = type.split('.')[0]!;
    if (PSEUDO_FS_TYPES.has(type) || PSEUDO_FS_TYPES.has(base)) points.push(unescapeMountField(fields[4]!));
  }
  return [...new Set(points)];
}

const DOS_DEVICE = /^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³]|conin\$|conout\$|clock\$)(\..*)?$/i;

/**
 * Why a host path (as a rule writes it, or as expanded) names a device or
 * named-pipe namespace rather than files, or undefined when it does not.
 * POSIX paths are covered by the exclusions above; this is for Windows
 * syntax, which reaches devices by name anywhere.
 */
export function deviceNamespaceReason(hostPath: string, style: PathStyle): string | undefined {
  if (style !== 'win32') return undefined;
  const path = hostPath.replaceAll('/', '\\');
  if (/^\\\\[.?]\\/.test(path) || /^\\\?\?\\/.test(path)) return 'a Windows device namespace path (\\\\.\\, \\\\?\\, \\??\\)';
  const unc = /^\\\\([^\\]+)\\([^\\]+)/.exec(path);
  if (unc && /^(pipe|mailslot)$/i.test(unc[2]!)) return `a Windows ${unc[2]!.toLowerCase() === 'pipe' ? 'named-pipe' : 'mailslot'} namespace path`;
  const rest = path.replace(/^[A-Za-z]:/, '').replace(/^\\\\[^\\]+\\[^\\]+/, '');
  for (const part of rest.split('\\')) {
    if (part === '') continue;
    if (DOS_DEVICE.test(part.replace(/[. ]+$/, ''))) return `a Windows device name (${part})`;
    if (part.includes(':')) return `an alternate data stream or device path (${part})`;
  }
  return undefined;
}
