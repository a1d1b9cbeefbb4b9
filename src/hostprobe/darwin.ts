import { darwinPlatform } from '../platform/darwin.ts';
import type { AcceleratorProbe, HostAdapter, PlatformProbe } from './host-adapter.ts';
import type { CpuFacts, KeyboardFacts, ProxyFacts, TimezoneFacts } from './host-profile.ts';
import { ianaZone, NO_PROXY, parseColonLines, proxyFromEnv, redactProxy, xkbFromMacInputSource } from './probe-common.ts';
import { liveSource, type ProbeSource } from '../platform/probe-source.ts';

// Untested at runtime: built and unit-tested here against recorded command
// outputs (test/hostprobe/fixtures/darwin-*.json), never run on macOS.

/** OIDs every supported macOS has; asked in one sysctl call. */
export const SYSCTL_CORE = ['hw.physicalcpu', 'hw.logicalcpu', 'hw.memsize', 'hw.pagesize', 'kern.hv_support', 'machdep.cpu.brand_string'];

/** `scutil --proxy`: a nested `<dictionary> { Key : value … }` dump. */
export function parseScutilProxy(output: string): ProxyFacts | null {
  const values = parseColonLines(output);
  const exceptions: string[] = [];
  const list = /ExceptionsList\s*:\s*<array>\s*\{([^}]*)\}/.exec(output)?.[1] ?? '';
  for (const line of list.split('\n')) {
    const match = /^\s*\d+\s*:\s*(.+?)\s*$/.exec(line);
    if (match) exceptions.push(match[1]!);
  }
  const proxy = (scheme: 'HTTP' | 'HTTPS') => {
    if (values[`${scheme}Enable`] !== '1' || !values[`${scheme}Proxy`]) return null;
    const port = values[`${scheme}Port`];
    return redactProxy(`http://${values[`${scheme}Proxy`]}${port ? `:${port}` : ''}`);
  };
  const http = proxy('HTTP');
  const https = proxy('HTTPS');
  const autoConfigUrl = values['ProxyAutoConfigEnable'] === '1' ? (values['ProxyAutoConfigURLString'] ?? null) : null;
  if (!http && !https && !autoConfigUrl) return null;
  return { http, https, noProxy: exceptions, autoConfigUrl, source: 'scutil' };
}

/** The top level of a plist dict (`diskutil info -plist`): strings, integers, booleans. */
export function parsePlist(xml: string): Record<string, string | number | boolean> {
  const values: Record<string, string | number | boolean> = {};
  const entry = /<key>([^<]+)<\/key>\s*(?:<(true|false)\/>|<string>([^<]*)<\/string>|<integer>(-?\d+)<\/integer>)/g;
  for (const match of xml.matchAll(entry)) {
    const [, key, bool, text, integer] = match;
    if (key! in values) continue;
    values[key!] = bool ? bool === 'true' : text !== undefined ? text.replace(/&amp;/g, '&').replace(/&lt;/g, '<').replace(/&gt;/g, '>') : Number(integer);
  }
  return values;
}

export function darwinProbe(source: ProbeSource = liveSource()): PlatformProbe {
  let sysctl: Promise<Record<string, string>> | undefined;
  const core = () => (sysctl ??= source.run('sysctl', SYSCTL_CORE).then((out) => parseColonLines(out ?? '')));
  const one = async (oid: string) => (await source.run('sysctl', ['-n', oid]))?.trim();
  return {
    async os() {
      const versions = parseColonLines((await source.run('sw_vers', [])) ?? '');
      const version = versions['ProductVersion'];
      const build = versions['BuildVersion'];
      // An x64 launcher on Apple silicon runs under Rosetta 2: the machine is arm64.
      const translated = (await one('sysctl.proc_translated')) === '1';
      return {
        family: 'darwin',
        name: versions['ProductName'] ?? 'macOS',
        version: version ? `${version}${build ? ` (${build})` : ''}` : null,
        kernel: source.os.release,
        arch: source.os.arch,
        machineArch: translated ? 'arm64' : null,
      };
    },
    async cpu(): Promise<CpuFacts> {
      const [values, features, vmm] = await Promise.all([core(), one('machdep.cpu.features'), one('kern.hv_vmm_present')]);
      const virtualization: string[] = [];
      // Intel Macs list VMX; on Apple silicon kern.hv_support is the only word.
      if (features?.split(/\s+/).includes('VMX')) virtualization.push('vmx');
      if (values['kern.hv_support'] === '1') virtualization.push('hv');
      const cores = Number(values['hw.physicalcpu']);
      return {
        model: values['machdep.cpu.brand_string'] || source.os.cpuModel,
        cores: Number.isInteger(cores) && cores > 0 ? cores : null,
        threads: source.os.threads,
        virtualization,
        hypervisor: vmm === undefined ? null : vmm === '1',
      };
    },
    async memory() {
      const [values, vmStat] = await Promise.all([core(), source.run('vm_stat', [])]);
      const total = Number(values['hw.memsize']);
      const totalMiB = Number.isFinite(total) && total > 0 ? Math.floor(total / 1048576) : source.os.totalMiB;
      // free + inactive + speculative pages: what macOS hands out without swapping.
      const pageSize = Number(/page size of (\d+) bytes/.exec(vmStat ?? '')?.[1] ?? values['hw.pagesize']);
      const pages = parseColonLines(vmStat ?? '');
      const count = (name: string) => Number((pages[name] ?? '').replace(/\.$/, '')) || 0;
      const availablePages = count('Pages free') + count('Pages inactive') + count('Pages speculative');
      const availableMiB = vmStat && pageSize > 0 ? Math.floor((availablePages * pageSize) / 1048576) : source.os.freeMiB;
      return { totalMiB, availableMiB: Math.min(availableMiB, totalMiB) };
    },
    async accelerators(): Promise<AcceleratorProbe[]> {
      const value = (await core())['kern.hv_support'];
      if (value === undefined) return [{ name: 'hvf', usable: false, reason: 'sysctl kern.hv_support could not be read' }];
      return [{ name: 'hvf', usable: value === '1', reason: `sysctl kern.hv_support = ${value}` }];
    },
    async display() {
      return { kind: 'quartz', present: true, detail: null };
    },
    async locale() {
      const apple = (await source.run('defaults', ['read', '-g', 'AppleLocale']))?.trim();
      return apple || source.env['LC_ALL'] || source.env['LANG'] || source.os.intlLocale;
    },
    async keyboard(): Promise<KeyboardFacts | null> {
      const id = (await source.run('defaults', ['read', 'com.apple.HIToolbox', 'AppleCurrentKeyboardLayoutInputSourceID']))?.trim();
      if (!id) return null;
      const xkb = xkbFromMacInputSource(id);
      return { layout: xkb?.layout ?? null, variant: xkb?.variant ?? null, native: id, source: 'com.apple.HIToolbox AppleCurrentKeyboardLayoutInputSourceID' };
    },
    async timezone(): Promise<TimezoneFacts | null> {
      const tz = ianaZone(source.env['TZ']);
      if (tz) return { name: tz, native: null, source: 'TZ' };
      // /etc/localtime → /var/db/timezone/zoneinfo/Europe/Berlin
      const link = await source.readLink('/etc/localtime');
      const zone = link?.includes('zoneinfo/') ? ianaZone(link) : null;
      if (zone) return { name: zone, native: null, source: '/etc/localtime' };
      const intl = ianaZone(source.os.intlTimeZone);
      return intl ? { name: intl, native: null, source: 'Intl' } : null;
    },
    async proxy() {
      const fromEnv = proxyFromEnv(source.env);
      if (fromEnv) return fromEnv;
      const scutil = await source.run('scutil', ['--proxy']);
      return (scutil && parseScutilProxy(scutil)) || NO_PROXY;
    },
    async usbPortOf() {
      return null;
    },
    async driveHolding(path) {
      // df names the volume's device and mount point; diskutil describes its disk.
      const df = (await source.run('df', ['-P', path]))?.trim().split('\n').at(-1);
      const [, device, mountpoint] = /^(\/dev\/\S+)\s+\d+\s+\d+\s+\d+\s+\d+%\s+(.+)$/.exec(df ?? '') ?? [];
      if (!device || !mountpoint) return null;
      const info = parsePlist((await source.run('diskutil', ['info', '-plist', device])) ?? '');
      if (Object.keys(info).length === 0) return null;
      const bus = typeof info['BusProtocol'] === 'string' ? info['BusProtocol'] : null;
      const whole = typeof info['ParentWholeDisk'] === 'string' ? `/dev/${info['ParentWholeDisk']}` : device;
      const size = info['TotalSize'] ?? info['Size'];
      return {
        device: whole,
        description: typeof info['MediaName'] === 'string' ? info['MediaName'] : null,
        busType: bus,
        size: typeof size === 'number' ? size : null,
        isReadOnly: info['WritableMedia'] === false || info['Writable'] === false,
        isRemovable: info['RemovableMedia'] === true || info['Removable'] === true || info['Ejectable'] === true || info['Internal'] === false,
        isSystem: info['Internal'] === true && mountpoint === '/',
        isVirtual: info['VirtualOrPhysical'] === 'Virtual',
        isUSB: bus === 'USB',
        mountpoints: [{ path: mountpoint }],
      };
    },
  };
}

export const darwinHost: HostAdapter = {
  ...darwinPlatform,
  async probeAccelerators() {
    return darwinProbe().accelerators();
  },
  probe: darwinProbe,
};
