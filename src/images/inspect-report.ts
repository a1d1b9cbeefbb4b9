// What `image inspect` says about an image, made from the lines the
// appliance's pocketvm-inspect printed (payload/appliance-rootfs/usr/bin/
// pocketvm-inspect): the partitions and file systems blkid saw, and the
// configuration files of each system it mounted read-only (a Windows
// system's registry hives are read by windows-hives.ts). Pure parsing: no
// I/O, so every rule here is unit-tested on text.
import { windowsFactsFromHives, type WindowsFacts } from './windows-hives.ts';

export interface FileSystemFact {
  /** The partition it is in (0: the whole disk); for an LVM logical volume, the partition of its physical volume. */
  partition: number;
  /** An LVM logical volume's VG/LV, or null for a partition's own file system. */
  volume: string | null;
  device: string;
  bytes: number;
  type: string | null;
  uuid: string | null;
  label: string | null;
  /** GPT/MBR: the partition's own id and its type (GUID, or 0xNN). */
  partUuid: string | null;
  partType: string | null;
  /** Where the system's fstab mounts it. */
  mountpoint: string | null;
  esp: boolean;
}

export interface FstabEntry {
  spec: string;
  mountpoint: string;
  type: string;
  options: string;
}

export interface UserFact {
  name: string;
  uid: number;
  gid: number;
  home: string;
  shell: string;
}

export interface NetworkInterfaceFact {
  name: string;
  method: string;
  address?: string;
  gateway?: string;
}

export interface ImageFacts {
  os: { family: 'linux' | 'windows' | 'unknown'; distribution: string | null; version: string | null; codename: string | null; name: string | null };
  architecture: string | null;
  /** The partition the system's root file system is on (0: the whole disk; on LVM, its physical volume's). */
  rootPartition: number | null;
  partitionTable: { kind: string | null; id: string | null };
  firmware: 'uefi' | 'bios' | 'uefi+bios' | 'unknown';
  bootloader: string | null;
  kernels: { version: string; file: string; initramfs: string | null }[];
  fileSystems: FileSystemFact[];
  fstab: FstabEntry[];
  hostname: string | null;
  machineId: string | null;
  /** Login accounts: root and uids from 1000 up (not nobody). */
  users: UserFact[];
  network: { interfaces: NetworkInterfaceFact[]; files: string[] };
  packages: { manager: 'dpkg' | 'apk' | 'rpm'; count: number | null } | null;
  efiFiles: string[];
  /** Read from the registry hives (windows-hives.ts); null when the image holds no Windows. */
  windows: WindowsFacts | null;
}

export const ESP_GUID = 'c12a7328-f81f-11d2-ba4b-00a0c93ec93b';
const BIOS_BOOT_GUID = '21686148-6449-6e6f-744e-656564454649';

interface Raw {
  disk?: { device: string; bytes: number };
  blkid: Map<number, { device: string; bytes: number; values: Record<string, string> }>;
  files: Map<number, Map<string, string>>;
  paths: Map<number, string[]>;
  elf: Map<number, string>;
  counts: Map<number, Record<string, number>>;
  mounted: Set<number>;
  /** Registry hives by partition and name (SOFTWARE, SYSTEM): their bytes, or their size when too large to be sent. */
  hives: Map<number, Map<string, Buffer | number>>;
  /** pocketvm-inspect's number for a logical volume → its physical volume's partition and its VG/LV. */
  volumes: Map<number, { partition: number; name: string }>;
}

const decode = (b64: string | undefined) => (b64 ? Buffer.from(b64, 'base64').toString('utf8') : '');

function parseLines(report: string): Raw {
  const raw: Raw = {
    blkid: new Map(),
    files: new Map(),
    paths: new Map(),
    elf: new Map(),
    counts: new Map(),
    mounted: new Set(),
    hives: new Map(),
    volumes: new Map(),
  };
  for (const line of report.split('\n')) {
    const [what, ...f] = line.trim().split(' ');
    const n = Number(f[0]);
    switch (what) {
      case 'disk':
        raw.disk = { device: f[0]!, bytes: Number(f[1]) };
        break;
      case 'blkid': {
        const values: Record<string, string> = {};
        for (const pair of decode(f[3]).split('\n')) {
          const eq = pair.indexOf('=');
          if (eq > 0) values[pair.slice(0, eq)] = pair.slice(eq + 1).replace(/\\(.)/g, '$1');
        }
        raw.blkid.set(n, { device: f[1]!, bytes: Number(f[2]), values });
        break;
      }
      case 'mounted':
        raw.mounted.add(n);
        break;
      case 'file':
        if (!raw.files.has(n)) raw.files.set(n, new Map());
        raw.files.get(n)!.set(f[1]!, decode(f[2]));
        break;
      case 'path':
        if (!raw.paths.has(n)) raw.paths.set(n, []);
        raw.paths.get(n)!.push(f.slice(1).join(' '));
        break;
      case 'elf':
        raw.elf.set(n, f[2] ?? '');
        break;
      case 'hive':
      case 'hive-size':
        if (!raw.hives.has(n)) raw.hives.set(n, new Map());
        raw.hives.get(n)!.set(f[1]!, what === 'hive' ? Buffer.from(f[2] ?? '', 'base64') : Number(f[2]));
        break;
      case 'volume':
        raw.volumes.set(n, { partition: Number(f[1]), name: `${f[2]}/${f[3]}` });
        break;
      case 'count':
        raw.counts.set(n, { ...raw.counts.get(n), [f[1]!]: Number(f[2]) });
        break;
    }
  }
  return raw;
}

/** KEY=value lines (os-release), quotes removed. */
export function parseKeyValues(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const match = /^\s*([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (match) out[match[1]!] = match[2]!.trim().replace(/^(["'])(.*)\1$/, '$2');
  }
  return out;
}

export function parseFstab(text: string): FstabEntry[] {
  return text
    .split('\n')
    .map((line) => line.replace(/#.*$/, '').trim())
    .filter(Boolean)
    .map((line) => line.split(/\s+/))
    .filter((f) => f.length >= 3)
    .map(([spec, mountpoint, type, options]) => ({ spec: spec!, mountpoint: mountpoint!, type: type!, options: options ?? 'defaults' }));
}

export function parsePasswd(text: string): UserFact[] {
  return text
    .split('\n')
    .map((line) => line.split(':'))
    .filter((f) => f.length >= 7)
    .map(([name, , uid, gid, , home, shell]) => ({ name: name!, uid: Number(uid), gid: Number(gid), home: home!, shell: shell! }))
    .filter((u) => u.uid === 0 || (u.uid >= 1000 && u.uid < 60000));
}

/** Debian's /etc/network/interfaces (and interfaces.d): `iface NAME inet METHOD` and its `address`/`gateway`. */
export function parseInterfaces(text: string): NetworkInterfaceFact[] {
  const out: NetworkInterfaceFact[] = [];
  let current: NetworkInterfaceFact | undefined;
  for (const line of text.split('\n').map((l) => l.replace(/#.*$/, '').trim())) {
    const iface = /^iface\s+(\S+)\s+inet6?\s+(\S+)/.exec(line);
    if (iface) {
      current = { name: iface[1]!, method: iface[2]! };
      out.push(current);
      continue;
    }
    const option = /^(address|gateway)\s+(\S+)/.exec(line);
    if (option && current) current[option[1] as 'address' | 'gateway'] = option[2]!;
  }
  return out;
}

/** systemd-networkd .network files: [Match] Name=, DHCP= or Address=. */
function parseNetworkd(text: string): NetworkInterfaceFact[] {
  const values = parseKeyValues(text);
  const name = values['Name'];
  if (!name) return [];
  const address = values['Address'];
  return [{ name, method: address ? 'static' : values['DHCP'] && values['DHCP'] !== 'no' ? 'dhcp' : 'manual', ...(address ? { address } : {}) }];
}

/** The architecture an ELF header (hex of its first 20 bytes) or a PE file's start names. */
export function architectureOf(hex: string): string | null {
  const bytes = Buffer.from(hex, 'hex');
  if (bytes.length >= 20 && bytes.subarray(0, 4).toString('latin1') === '\x7fELF') {
    const machine = bytes[5] === 2 ? bytes.readUInt16BE(18) : bytes.readUInt16LE(18);
    const names: Record<number, string> = {
      3: 'i386',
      8: 'mips',
      20: 'ppc',
      21: 'ppc64',
      22: 's390x',
      40: 'arm',
      62: 'x86_64',
      183: 'aarch64',
      243: 'riscv64',
    };
    return names[machine] ?? `elf-machine-${machine}`;
  }
  return null;
}

/** An LVM volume's device-mapper name: VG-LV, each name's own dashes doubled. */
const mapperName = (volume: string) =>
  volume
    .split('/')
    .map((part) => part.replaceAll('-', '--'))
    .join('-');

/** A partition's number in a kernel name of the image's first disk (/dev/sda1, vda1, hda1, xvda1, nvme0n1p1), as fstab may name it. */
const partitionOfName = (device: string) => /^\/dev\/(?:(?:[sv]|h|xv)da|nvme0n1p)([0-9]+)$/.exec(device)?.[1];

/**
 * A fstab spec matched to a file system: UUID=, LABEL=, PARTUUID= (or their
 * /dev/disk/by-uuid/, by-label/, by-partuuid/ links), an LVM volume's
 * /dev/mapper/VG-LV or /dev/VG/LV, or a partition of the first disk by its
 * kernel name.
 */
function fstabSpecMatches(spec: string, fs: FileSystemFact): boolean {
  const link = /^\/dev\/disk\/by-(uuid|label|partuuid)\/(.+)$/.exec(spec);
  const given = link ? `${link[1]!.toUpperCase()}=${link[2]!}` : spec;
  const [key, value] = given.includes('=') ? [given.slice(0, given.indexOf('=')), given.slice(given.indexOf('=') + 1)] : ['', given];
  if (key === 'UUID') return fs.uuid?.toLowerCase() === value.toLowerCase();
  if (key === 'LABEL') return fs.label === value;
  if (key === 'PARTUUID') return fs.partUuid?.toLowerCase() === value.toLowerCase();
  if (key === '' && fs.volume) return value === `/dev/mapper/${mapperName(fs.volume)}` || value === `/dev/${fs.volume}`;
  if (key === '') return fs.partition > 0 && partitionOfName(value) === String(fs.partition);
  return false;
}

export function factsFromReport(report: string): ImageFacts {
  const raw = parseLines(report);
  const whole = raw.blkid.get(0)?.values ?? {};
  // Keyed by pocketvm-inspect's number (a partition's, or a logical volume's from 100).
  const keyed = [...raw.blkid.entries()]
    .filter(([n, b]) => n !== 0 || !b.values['PTTYPE'])
    .map(([n, b]): [number, FileSystemFact] => {
      const partType = b.values['PART_ENTRY_TYPE'] ?? null;
      const volume = raw.volumes.get(n);
      return [
        n,
        {
          partition: volume?.partition ?? n,
          volume: volume?.name ?? null,
          device: b.device,
          bytes: b.bytes,
          type: b.values['TYPE'] ?? null,
          uuid: b.values['UUID'] ?? null,
          label: b.values['LABEL'] ?? null,
          partUuid: b.values['PART_ENTRY_UUID'] ?? null,
          partType,
          mountpoint: null,
          esp: partType?.toLowerCase() === ESP_GUID || partType === '0xef',
        },
      ];
    });
  const fileSystems = keyed.map(([, fs]) => fs);
  // The system: the file system with an os-release (else a Windows folder, else any /etc).
  const rootOf = (test: (files: Map<string, string>, paths: string[]) => boolean) =>
    [...raw.mounted].find((n) => test(raw.files.get(n) ?? new Map(), raw.paths.get(n) ?? []));
  const root =
    rootOf((files) => files.has('etc/os-release') || files.has('usr/lib/os-release')) ??
    rootOf((_files, paths) => paths.some((p) => p.startsWith('Windows/'))) ??
    rootOf((files) => files.has('etc/fstab') || files.has('etc/passwd'));
  const files = raw.files.get(root ?? -1) ?? new Map<string, string>();
  const rootPaths = raw.paths.get(root ?? -1) ?? [];
  const osRelease = parseKeyValues(files.get('etc/os-release') ?? files.get('usr/lib/os-release') ?? '');
  const isWindows = rootPaths.some((p) => p.startsWith('Windows/'));
  const fstab = parseFstab(files.get('etc/fstab') ?? '');
  for (const entry of fstab) {
    const fs = fileSystems.find((f) => fstabSpecMatches(entry.spec, f));
    if (fs) fs.mountpoint = entry.mountpoint;
  }
  const rootFs = keyed.find(([n]) => n === root)?.[1];
  if (rootFs && !rootFs.mountpoint) rootFs.mountpoint = '/';
  // A separate /boot (Debian on LVM): its kernels and grub/ count as the system's boot/.
  const boot = keyed.find(([n, fs]) => n !== root && fs.mountpoint === '/boot')?.[0];
  const paths = [...rootPaths, ...(boot === undefined ? [] : (raw.paths.get(boot) ?? []).map((p) => `boot/${p}`))];
  // The ESP's files: every mounted file system that had an EFI folder.
  const efiFiles = [...raw.paths.entries()].flatMap(([n, list]) => (n === root || n === boot ? [] : list.filter((p) => /^efi\//i.test(p))));
  const kernels = paths
    .filter((p) => /^boot\/vmlinu[xz]-/.test(p))
    .map((file) => {
      const version = file.replace(/^boot\/vmlinu[xz]-/, '');
      const initramfs = paths.find((p) => p === `boot/initrd.img-${version}` || p === `boot/initramfs-${version}.img`) ?? null;
      return { version, file: `/${file}`, initramfs: initramfs ? `/${initramfs}` : null };
    });
  const hasEsp = fileSystems.some((f) => f.esp);
  const ptKind = whole['PTTYPE'] ?? null;
  const biosBoot =
    fileSystems.some((f) => f.partType?.toLowerCase() === BIOS_BOOT_GUID) || paths.includes('boot/grub/i386-pc') || (ptKind === 'dos' && !hasEsp);
  const uefi = hasEsp || paths.includes('boot/grub/x86_64-efi');
  const firmware = uefi && biosBoot ? 'uefi+bios' : uefi ? 'uefi' : biosBoot ? 'bios' : 'unknown';
  const hasGrub = paths.some((p) => /^boot\/grub2?\/grub\.cfg$/.test(p)) || efiFiles.some((p) => /grub/i.test(p));
  const bootloader = hasGrub
    ? 'grub'
    : efiFiles.some((p) => /systemd-boot|loader\/loader\.conf/i.test(p)) || paths.some((p) => p.startsWith('boot/loader/entries/'))
      ? 'systemd-boot'
      : paths.some((p) => /^boot\/(syslinux|extlinux)$/.test(p))
        ? 'syslinux'
        : isWindows && efiFiles.some((p) => /bootmgfw\.efi$/i.test(p))
          ? 'windows-boot-manager'
          : null;
  const interfaceFiles = [...files.keys()].filter((p) => /^etc\/(network\/interfaces|netplan\/|systemd\/network\/|sysconfig\/network-scripts\/)/.test(p));
  const interfaces = interfaceFiles.flatMap((p) => (p.startsWith('etc/systemd/network/') ? parseNetworkd(files.get(p)!) : parseInterfaces(files.get(p)!)));
  const counts = raw.counts.get(root ?? -1) ?? {};
  const manager = (['dpkg', 'apk', 'rpm'] as const).find((m) => counts[m] !== undefined);
  const hives = raw.hives.get(root ?? -1);
  const windows = isWindows
    ? windowsFactsFromHives({
        software: hives?.get('SOFTWARE'),
        system: hives?.get('SYSTEM'),
        driverFiles: new Set(paths.filter((p) => /^Windows\/System32\/drivers\/[^/]+$/i.test(p)).map((p) => p.slice(p.lastIndexOf('/') + 1).toLowerCase())),
      })
    : null;
  const distribution = osRelease['ID'] ?? (files.has('etc/debian_version') ? 'debian' : isWindows ? 'windows' : null);
  const version = osRelease['VERSION_ID'] ?? files.get('etc/debian_version')?.trim() ?? windows?.version ?? null;
  return {
    os: {
      family: isWindows ? 'windows' : root !== undefined ? 'linux' : 'unknown',
      distribution,
      version,
      codename: osRelease['VERSION_CODENAME'] ?? null,
      name: osRelease['PRETTY_NAME'] ?? windows?.productName ?? null,
    },
    architecture: root === undefined ? null : (architectureOf(raw.elf.get(root) ?? '') ?? windows?.architecture ?? null),
    rootPartition: rootFs?.partition ?? root ?? null,
    partitionTable: { kind: ptKind, id: whole['PTUUID'] ?? null },
    firmware,
    bootloader,
    kernels,
    fileSystems,
    fstab,
    hostname: files.get('etc/hostname')?.trim().split('\n')[0] || windows?.hostname || null,
    machineId: files.get('etc/machine-id')?.trim() || null,
    users: parsePasswd(files.get('etc/passwd') ?? ''),
    network: {
      interfaces,
      files: [...interfaceFiles, ...paths.filter((p) => p.startsWith('etc/NetworkManager/system-connections/'))].map((p) => `/${p}`),
    },
    packages: manager ? { manager, count: counts[manager]! >= 0 ? counts[manager]! : null } : null,
    efiFiles: efiFiles.map((p) => `/${p}`),
    windows,
  };
}
