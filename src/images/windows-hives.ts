// What `image inspect` reads from a Windows system's registry hives
// (docs/image-store.md, "Windows: the registry hives"): the edition and build from SOFTWARE, the
// hostname, the processor architecture and the drivers from SYSTEM's current
// control set. Pure: the hive bytes come from the appliance's report
// (inspect-report.ts); a hive that cannot be read is named with its error
// and everything else is still reported.
import { Hive, HiveError, numberOf, stringOf, type HiveKey } from './regf.ts';

export interface WindowsDriver {
  /** The service's key name under Services (e.g. viostor). */
  name: string;
  type: 'kernel' | 'filesystem';
  /** Start: 0 boot, 1 system, 2 automatic, 3 on demand, 4 disabled. */
  start: number | null;
  startType: 'boot' | 'system' | 'automatic' | 'demand' | 'disabled' | null;
  imagePath: string | null;
  /** Whether the driver's file is in the image (System32\drivers only; null when ImagePath points elsewhere). */
  fileFound: boolean | null;
}

export type HiveState = { status: 'read' } | { status: 'missing' } | { status: 'unreadable'; error: string };

export interface WindowsFacts {
  found: true;
  productName: string | null;
  editionId: string | null;
  installationType: string | null;
  /** CurrentMajorVersionNumber.CurrentMinorVersionNumber, else CurrentVersion (e.g. 6.3). */
  version: string | null;
  build: string | null;
  /** DisplayVersion (22H2), else ReleaseId (1809). */
  displayVersion: string | null;
  /** The DNS host name (Services\Tcpip\Parameters Hostname, as libguestfs reports it), else the computer name. */
  hostname: string | null;
  /** The NetBIOS computer name (Control\ComputerName\ComputerName). */
  computerName: string | null;
  architecture: string | null;
  /** The control set Select\Current names (ControlSet001). */
  controlSet: string | null;
  /** Services of type 1 (kernel driver) and 2 (file-system driver), by name. */
  drivers: WindowsDriver[];
  /** The virtio storage and network drivers a guest on QEMU boots with: each one's start type, or null when not registered. */
  virtio: Record<'viostor' | 'vioscsi' | 'netkvm', WindowsDriver['startType'] | 'registered'>;
  hives: { software: HiveState; system: HiveState };
}

export interface HiveFiles {
  /** The hive's bytes, or its size when it was too large to be sent (pocketvm-inspect's limit). */
  software?: Buffer | number | undefined;
  system?: Buffer | number | undefined;
  /** Lower-cased names of the files in Windows/System32/drivers. */
  driverFiles?: Set<string> | undefined;
}

const START_TYPES = ['boot', 'system', 'automatic', 'demand', 'disabled'] as const;
const PROCESSOR: Record<string, string> = { AMD64: 'x86_64', x86: 'i386', ARM64: 'aarch64', ARM: 'arm', IA64: 'ia64' };

function open(bytes: Buffer | number | undefined): { hive: Hive | null; state: HiveState } {
  if (bytes === undefined) return { hive: null, state: { status: 'missing' } };
  if (typeof bytes === 'number') return { hive: null, state: { status: 'unreadable', error: `${bytes} bytes, more than inspect reads (128 MiB)` } };
  try {
    return { hive: new Hive(bytes), state: { status: 'read' } };
  } catch (cause) {
    if (cause instanceof HiveError || cause instanceof RangeError) return { hive: null, state: { status: 'unreadable', error: cause.message } };
    throw cause;
  }
}

/** Runs one part of the reading; a damaged cell found on the way marks the hive unreadable rather than failing inspect. */
function guarded<T>(states: { state: HiveState }, fallback: T, read: () => T): T {
  try {
    return read();
  } catch (cause) {
    if (!(cause instanceof HiveError || cause instanceof RangeError)) throw cause;
    states.state = { status: 'unreadable', error: cause.message };
    return fallback;
  }
}

function driverFileFound(imagePath: string | null, files: Set<string> | undefined): boolean | null {
  if (!imagePath || !files) return null;
  const match = /^(?:\\SystemRoot\\|%SystemRoot%\\|\\\?\?\\[A-Z]:\\Windows\\|[A-Z]:\\Windows\\)?System32\\drivers\\([^\\]+)$/i.exec(imagePath.trim());
  return match ? files.has(match[1]!.toLowerCase()) : null;
}

export function windowsFactsFromHives(files: HiveFiles): WindowsFacts {
  const software = open(files.software);
  const system = open(files.system);
  const facts: WindowsFacts = {
    found: true,
    productName: null,
    editionId: null,
    installationType: null,
    version: null,
    build: null,
    displayVersion: null,
    hostname: null,
    computerName: null,
    architecture: null,
    controlSet: null,
    drivers: [],
    virtio: { viostor: null, vioscsi: null, netkvm: null },
    hives: { software: software.state, system: system.state },
  };
  const sw = software.hive;
  if (sw)
    guarded(software, undefined, () => {
      const key = sw.key('Microsoft\\Windows NT\\CurrentVersion');
      if (!key) return;
      const text = (name: string) => stringOf(sw.get(key, name));
      facts.productName = text('ProductName');
      facts.editionId = text('EditionID');
      facts.installationType = text('InstallationType');
      const major = numberOf(sw.get(key, 'CurrentMajorVersionNumber'));
      const minor = numberOf(sw.get(key, 'CurrentMinorVersionNumber'));
      facts.version = major !== null && minor !== null ? `${major}.${minor}` : text('CurrentVersion');
      facts.build = text('CurrentBuild') ?? text('CurrentBuildNumber');
      facts.displayVersion = text('DisplayVersion') ?? text('ReleaseId');
    });
  const sys = system.hive;
  if (sys)
    guarded(system, undefined, () => {
      const select = sys.key('Select');
      const current = select ? numberOf(sys.get(select, 'Current')) : null;
      // Without Select, the first control set is the one Windows boots with.
      const name = current !== null ? `ControlSet${String(current).padStart(3, '0')}` : 'ControlSet001';
      const controlSet = sys.key(name);
      if (!controlSet) return;
      facts.controlSet = name;
      const under = (path: string): HiveKey | null => {
        let key: HiveKey | null = controlSet;
        for (const part of path.split('\\')) key = key && sys.child(key, part);
        return key;
      };
      const computer = under('Control\\ComputerName\\ComputerName');
      facts.computerName = computer ? stringOf(sys.get(computer, 'ComputerName')) : null;
      const tcpip = under('Services\\Tcpip\\Parameters');
      facts.hostname = (tcpip ? stringOf(sys.get(tcpip, 'Hostname')) : null) || facts.computerName;
      const environment = under('Control\\Session Manager\\Environment');
      const processor = environment ? stringOf(sys.get(environment, 'PROCESSOR_ARCHITECTURE')) : null;
      facts.architecture = processor ? (PROCESSOR[processor] ?? processor) : null;
      const services = under('Services');
      if (!services) return;
      for (const service of sys.subkeys(services)) {
        const type = numberOf(sys.get(service, 'Type'));
        if (type !== 1 && type !== 2) continue;
        const start = numberOf(sys.get(service, 'Start'));
        const imagePath = stringOf(sys.get(service, 'ImagePath'));
        facts.drivers.push({
          name: service.name,
          type: type === 1 ? 'kernel' : 'filesystem',
          start,
          startType: start !== null ? (START_TYPES[start] ?? null) : null,
          imagePath,
          fileFound: driverFileFound(imagePath, files.driverFiles),
        });
      }
      facts.drivers.sort((a, b) => a.name.localeCompare(b.name, 'en', { sensitivity: 'base' }));
      for (const name of ['viostor', 'vioscsi', 'netkvm'] as const) {
        const driver = facts.drivers.find((d) => d.name.toLowerCase() === name);
        facts.virtio[name] = driver ? (driver.startType ?? 'registered') : null;
      }
    });
  facts.hives = { software: software.state, system: system.state };
  return facts;
}
