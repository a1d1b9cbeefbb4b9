import { windowsPlatform } from '../platform/windows.ts';
import type { AcceleratorProbe, HostAdapter, PlatformProbe } from './host-adapter.ts';
import type { CpuFacts, KeyboardFacts, ProxyFacts, TimezoneFacts } from './host-profile.ts';
import { NO_PROXY, proxyFromEnv, redactProxy, xkbFromWindowsKlid } from './probe-common.ts';
import { liveSource, type ProbeSource, type RegistryValue } from '../platform/probe-source.ts';

// Untested at runtime: built and unit-tested here against recorded registry
// values and command outputs (test/hostprobe/fixtures/windows-*.json), never
// run on Windows.

/** One PowerShell call for what only CIM knows: cores, VT-x/AMD-V, a running hypervisor. */
export const CIM_SCRIPT =
  '$p = @(Get-CimInstance Win32_Processor); $c = Get-CimInstance Win32_ComputerSystem; ' +
  '[pscustomobject]@{ Cores = ($p | Measure-Object NumberOfCores -Sum).Sum; ' +
  'VMMonitorModeExtensions = $p[0].VMMonitorModeExtensions; VirtualizationFirmwareEnabled = $p[0].VirtualizationFirmwareEnabled; ' +
  'SecondLevelAddressTranslationExtensions = $p[0].SecondLevelAddressTranslationExtensions; HypervisorPresent = $c.HypervisorPresent } | ConvertTo-Json -Compress';

/** The disk behind a drive letter (Storage module), for when drivelist's addon is missing. */
export function driveScript(letter: string): string {
  if (!/^[A-Z]$/.test(letter)) throw new Error(`not a drive letter: ${letter}`);
  return (
    `$p = Get-Partition -DriveLetter ${letter} -ErrorAction Stop; $d = $p | Get-Disk; $v = Get-Volume -DriveLetter ${letter}; ` +
    '[pscustomobject]@{ Number = $d.Number; FriendlyName = $d.FriendlyName; BusType = [string]$d.BusType; Size = $d.Size; ' +
    'IsReadOnly = $d.IsReadOnly; IsSystem = $d.IsSystem; IsBoot = $d.IsBoot; DriveType = [string]$v.DriveType } | ConvertTo-Json -Compress'
  );
}

interface CimFacts {
  Cores?: number | null;
  VMMonitorModeExtensions?: boolean | null;
  VirtualizationFirmwareEnabled?: boolean | null;
  SecondLevelAddressTranslationExtensions?: boolean | null;
  HypervisorPresent?: boolean | null;
}

/** Windows zone names (TimeZoneKeyName) → IANA, for the common ones; Intl answers the rest. */
const WINDOWS_ZONES: Record<string, string> = {
  UTC: 'Etc/UTC',
  'GMT Standard Time': 'Europe/London',
  'W. Europe Standard Time': 'Europe/Berlin',
  'Romance Standard Time': 'Europe/Paris',
  'Central Europe Standard Time': 'Europe/Budapest',
  'Central European Standard Time': 'Europe/Warsaw',
  'E. Europe Standard Time': 'Europe/Chisinau',
  'FLE Standard Time': 'Europe/Kiev',
  'GTB Standard Time': 'Europe/Bucharest',
  'Russian Standard Time': 'Europe/Moscow',
  'Eastern Standard Time': 'America/New_York',
  'Central Standard Time': 'America/Chicago',
  'Mountain Standard Time': 'America/Denver',
  'Pacific Standard Time': 'America/Los_Angeles',
  'Tokyo Standard Time': 'Asia/Tokyo',
  'China Standard Time': 'Asia/Shanghai',
  'India Standard Time': 'Asia/Calcutta',
  'AUS Eastern Standard Time': 'Australia/Sydney',
};

function value(values: RegistryValue[] | undefined, name: string): string | number | undefined {
  return values?.find((v) => v.name.toLowerCase() === name.toLowerCase())?.data;
}

function text(values: RegistryValue[] | undefined, name: string): string | undefined {
  const data = value(values, name);
  return typeof data === 'string' && data.trim() ? data.trim() : undefined;
}

/** ProxyServer: `host:port`, or per scheme `http=h:p;https=h:p;ftp=…`. */
function parseProxyServer(server: string): { http: string | null; https: string | null } {
  if (!server.includes('=')) return { http: server, https: server };
  const byScheme: Record<string, string> = {};
  for (const part of server.split(';')) {
    const [scheme, address] = part.split('=');
    if (scheme && address) byScheme[scheme.trim().toLowerCase()] = address.trim();
  }
  return { http: byScheme['http'] ?? null, https: byScheme['https'] ?? null };
}

export function windowsProbe(source: ProbeSource = liveSource()): PlatformProbe {
  let cim: Promise<CimFacts | undefined> | undefined;
  const cimFacts = () =>
    (cim ??= source.run('powershell.exe', ['-NoProfile', '-NonInteractive', '-Command', CIM_SCRIPT]).then((out) => {
      try {
        return out ? (JSON.parse(out) as CimFacts) : undefined;
      } catch {
        return undefined;
      }
    }));
  const systemRoot = source.env['SystemRoot'] ?? source.env['SYSTEMROOT'] ?? 'C:\\Windows';
  return {
    async os() {
      const current = await source.registryValues('HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion');
      const build = text(current, 'CurrentBuild') ?? source.os.release.split('.')[2];
      const ubr = value(current, 'UBR');
      let name = text(current, 'ProductName') ?? null;
      // Windows 11 still calls itself "Windows 10" in ProductName; the build tells.
      if (name && build && Number(build) >= 22000) name = name.replace(/^Windows 10\b/, 'Windows 11');
      const display = text(current, 'DisplayVersion') ?? text(current, 'ReleaseId');
      const buildText = build ? `build ${build}${typeof ubr === 'number' ? `.${ubr}` : ''}` : undefined;
      return {
        family: 'windows',
        name,
        version: display && buildText ? `${display} (${buildText})` : (display ?? buildText ?? null),
        kernel: source.os.release,
        arch: source.os.arch,
        machineArch: source.os.machine && source.os.machine !== 'x86_64' && source.os.machine !== source.os.arch ? source.os.machine : null,
      };
    },
    async cpu(): Promise<CpuFacts> {
      const [processor, facts] = await Promise.all([source.registryValues('HKLM\\HARDWARE\\DESCRIPTION\\System\\CentralProcessor\\0'), cimFacts()]);
      const model = text(processor, 'ProcessorNameString') ?? source.os.cpuModel;
      const vendor = text(processor, 'VendorIdentifier') ?? model ?? '';
      const virtualization: string[] = [];
      // With a hypervisor running (Hyper-V, VBS), Windows hides VT-x from CIM
      // but the CPU has it: HypervisorPresent says so.
      if (facts?.VMMonitorModeExtensions || facts?.HypervisorPresent) virtualization.push(/AMD/i.test(vendor) ? 'svm' : 'vmx');
      if (facts?.SecondLevelAddressTranslationExtensions) virtualization.push('slat');
      return {
        model: model ?? null,
        cores: typeof facts?.Cores === 'number' && facts.Cores > 0 ? facts.Cores : null,
        threads: source.os.threads,
        virtualization,
        hypervisor: facts?.HypervisorPresent ?? null,
      };
    },
    async memory() {
      // os.freemem() is GlobalMemoryStatusEx's ullAvailPhys: what can be had without paging.
      return { totalMiB: source.os.totalMiB, availableMiB: source.os.freeMiB };
    },
    async accelerators(): Promise<AcceleratorProbe[]> {
      const [dll, facts] = await Promise.all([source.exists(`${systemRoot}\\System32\\WinHvPlatform.dll`), cimFacts()]);
      if (!dll)
        return [{ name: 'whpx', usable: false, reason: 'Windows Hypervisor Platform is not installed (turn on the "Windows Hypervisor Platform" feature)' }];
      if (facts?.HypervisorPresent === false)
        return [
          {
            name: 'whpx',
            usable: false,
            reason: 'Windows Hypervisor Platform is installed but no hypervisor is running (virtualisation off in the firmware, or a reboot pending)',
          },
        ];
      return [
        {
          name: 'whpx',
          usable: true,
          reason: facts
            ? 'Windows Hypervisor Platform is installed and the hypervisor is running'
            : 'Windows Hypervisor Platform is installed; whether the hypervisor runs is unknown: it is tried and dropped if QEMU refuses it',
        },
      ];
    },
    async display() {
      return { kind: 'windows', present: true, detail: null };
    },
    async locale() {
      const international = await source.registryValues('HKCU\\Control Panel\\International');
      return text(international, 'LocaleName') ?? source.os.intlLocale;
    },
    async keyboard(): Promise<KeyboardFacts | null> {
      const [preload, substitutes] = await Promise.all([
        source.registryValues('HKCU\\Keyboard Layout\\Preload'),
        source.registryValues('HKCU\\Keyboard Layout\\Substitutes'),
      ]);
      const first = text(preload, '1');
      if (!first) return null;
      // A substitute (d0010407 → 00010407) names the layout actually loaded.
      const klid = text(substitutes, first) ?? first;
      const xkb = xkbFromWindowsKlid(klid);
      return { layout: xkb?.layout ?? null, variant: xkb?.variant ?? null, native: klid, source: 'HKCU\\Keyboard Layout\\Preload' };
    },
    async timezone(): Promise<TimezoneFacts | null> {
      const info = await source.registryValues('HKLM\\SYSTEM\\CurrentControlSet\\Control\\TimeZoneInformation');
      const native = text(info, 'TimeZoneKeyName') ?? null;
      const name = (native ? WINDOWS_ZONES[native] : undefined) ?? source.os.intlTimeZone;
      if (!native && !name) return null;
      return { name: name ?? null, native, source: native ? 'HKLM\\SYSTEM\\CurrentControlSet\\Control\\TimeZoneInformation' : 'Intl' };
    },
    async proxy(): Promise<ProxyFacts> {
      const fromEnv = proxyFromEnv(source.env);
      if (fromEnv) return fromEnv;
      const settings = await source.registryValues('HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Internet Settings');
      const enabled = value(settings, 'ProxyEnable') === 1;
      const server = text(settings, 'ProxyServer');
      const autoConfigUrl = text(settings, 'AutoConfigURL') ?? null;
      if (!(enabled && server) && !autoConfigUrl) return NO_PROXY;
      const { http, https } = enabled && server ? parseProxyServer(server) : { http: null, https: null };
      const noProxy = (text(settings, 'ProxyOverride') ?? '')
        .split(';')
        .map((s) => s.trim())
        .filter(Boolean);
      return {
        http: http ? redactProxy(http) : null,
        https: https ? redactProxy(https) : null,
        noProxy: enabled ? noProxy : [],
        autoConfigUrl,
        source: 'registry',
      };
    },
    async usbPortOf() {
      return null;
    },
    async driveHolding(path) {
      const letter = /^([A-Za-z]):[\\/]?/.exec(path)?.[1];
      if (!letter) return null;
      const out = await source.run('powershell.exe', ['-NoProfile', '-NonInteractive', '-Command', driveScript(letter.toUpperCase())]);
      if (!out) return null;
      const disk = JSON.parse(out) as {
        Number?: number;
        FriendlyName?: string;
        BusType?: string;
        Size?: number;
        IsReadOnly?: boolean;
        IsSystem?: boolean;
        IsBoot?: boolean;
        DriveType?: string;
      };
      if (typeof disk.Number !== 'number') return null;
      const usb = disk.BusType === 'USB';
      return {
        device: `\\\\.\\PHYSICALDRIVE${disk.Number}`,
        description: disk.FriendlyName ?? null,
        busType: disk.BusType ?? null,
        size: typeof disk.Size === 'number' ? disk.Size : null,
        isReadOnly: disk.IsReadOnly === true,
        isRemovable: disk.DriveType === 'Removable' || usb,
        isSystem: disk.IsSystem === true || disk.IsBoot === true,
        isVirtual: disk.BusType === 'File Backed Virtual' || disk.BusType === 'Virtual',
        isUSB: usb,
        mountpoints: [{ path: `${letter.toUpperCase()}:\\` }],
      };
    },
  };
}

export const windowsHost: HostAdapter = {
  ...windowsPlatform,
  async probeAccelerators() {
    return windowsProbe().accelerators();
  },
  probe: windowsProbe,
};
