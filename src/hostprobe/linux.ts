import { join } from 'node:path';
import { linuxPlatform } from '../platform/linux.ts';
import type { AcceleratorProbe, HostAdapter, PlatformProbe } from './host-adapter.ts';
import type { CpuFacts, KeyboardFacts, MemoryFacts, TimezoneFacts } from './host-profile.ts';
import { firstOfList, ianaZone, NO_PROXY, parseKeyValueFile, proxyFromEnv } from './probe-common.ts';
import { liveSource, type ProbeSource } from '../platform/probe-source.ts';

async function probeKvm(source: ProbeSource): Promise<AcceleratorProbe> {
  if (!(await source.exists('/dev/kvm')))
    return { name: 'kvm', usable: false, reason: '/dev/kvm does not exist (no KVM module, or inside a VM without nested virtualisation)' };
  if (await source.canReadWrite('/dev/kvm')) return { name: 'kvm', usable: true, reason: '/dev/kvm is readable and writable' };
  return { name: 'kvm', usable: false, reason: '/dev/kvm exists but this user may not open it (join the kvm group)' };
}

const MiB = 1024 * 1024;

/** /proc/meminfo values in MiB (`MemTotal`, `MemAvailable`, …). */
function parseMeminfo(text: string): Record<string, number> {
  const values: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const match = /^(\w+):\s+(\d+)\s*kB/.exec(line);
    if (match) values[match[1]!] = Math.floor(Number(match[2]) / 1024);
  }
  return values;
}

/** The memory limit of this process's cgroup (v2 memory.max, or v1 memory.limit_in_bytes), with its usage; undefined when unlimited. */
async function cgroupMemory(source: ProbeSource): Promise<{ limitMiB: number; usedMiB: number } | undefined> {
  const cgroups = (await source.readText('/proc/self/cgroup')) ?? '';
  const candidates: Array<[string, string]> = [];
  for (const line of cgroups.split('\n')) {
    const [, controllers, path] = /^\d+:([^:]*):(.*)$/.exec(line) ?? [];
    if (path === undefined) continue;
    if (controllers === '') candidates.push([join('/sys/fs/cgroup', path, 'memory.max'), join('/sys/fs/cgroup', path, 'memory.current')]);
    if (controllers!.split(',').includes('memory')) {
      candidates.push([join('/sys/fs/cgroup/memory', path, 'memory.limit_in_bytes'), join('/sys/fs/cgroup/memory', path, 'memory.usage_in_bytes')]);
      // Inside a cgroup namespace the process's own group is the mount's root.
      candidates.push(['/sys/fs/cgroup/memory/memory.limit_in_bytes', '/sys/fs/cgroup/memory/memory.usage_in_bytes']);
    }
  }
  for (const [limitFile, usageFile] of candidates) {
    const limit = (await source.readText(limitFile))?.trim();
    if (!limit || !/^\d+$/.test(limit)) continue;
    const usage = Number((await source.readText(usageFile))?.trim() ?? 0) || 0;
    return { limitMiB: Math.floor(Number(limit) / MiB), usedMiB: Math.floor(usage / MiB) };
  }
  return undefined;
}

export function linuxProbe(source: ProbeSource = liveSource()): PlatformProbe {
  return {
    async os() {
      const release = parseKeyValueFile((await source.readText('/etc/os-release')) ?? (await source.readText('/usr/lib/os-release')) ?? '');
      return {
        family: 'linux',
        name: release['PRETTY_NAME'] ?? release['NAME'] ?? null,
        version: release['VERSION_ID'] ?? null,
        kernel: source.os.release,
        arch: source.os.arch,
        machineArch: null,
      };
    },
    async cpu(): Promise<CpuFacts> {
      const text = (await source.readText('/proc/cpuinfo')) ?? '';
      const field = (name: string) => new RegExp(`^${name}\\s*:\\s*(.*)$`, 'm').exec(text)?.[1]?.trim();
      const flags = new Set((field('flags') ?? field('Features') ?? '').split(/\s+/));
      const cores = new Set<string>();
      for (const block of text.split(/\n\s*\n/)) {
        const physical = /^physical id\s*:\s*(\d+)/m.exec(block)?.[1];
        const core = /^core id\s*:\s*(\d+)/m.exec(block)?.[1];
        if (core !== undefined) cores.add(`${physical ?? 0}:${core}`);
      }
      return {
        model: field('model name') ?? field('Model') ?? field('Hardware') ?? source.os.cpuModel,
        cores: cores.size > 0 ? cores.size : null,
        threads: source.os.threads,
        virtualization: ['vmx', 'svm'].filter((f) => flags.has(f)),
        hypervisor: text ? flags.has('hypervisor') : null,
      };
    },
    async memory(): Promise<MemoryFacts & { note?: string }> {
      const info = parseMeminfo((await source.readText('/proc/meminfo')) ?? '');
      let totalMiB = info['MemTotal'] ?? source.os.totalMiB;
      let availableMiB = info['MemAvailable'] ?? info['MemFree'] ?? source.os.freeMiB;
      const cgroup = await cgroupMemory(source);
      if (cgroup && cgroup.limitMiB < totalMiB) {
        totalMiB = cgroup.limitMiB;
        availableMiB = Math.max(0, Math.min(availableMiB, cgroup.limitMiB - cgroup.usedMiB));
        return {
          totalMiB,
          availableMiB,
          note: `this process's cgroup limits memory to ${cgroup.limitMiB} MiB (${cgroup.usedMiB} MiB used): counted as the host's`,
        };
      }
      return { totalMiB, availableMiB };
    },
    async accelerators() {
      return [await probeKvm(source)];
    },
    async display() {
      const wayland = source.env['WAYLAND_DISPLAY'];
      if (wayland) return { kind: 'wayland', present: true, detail: wayland };
      const x11 = source.env['DISPLAY'];
      if (x11) return { kind: 'x11', present: true, detail: x11 };
      return { kind: 'none', present: false, detail: null };
    },
    async locale() {
      const env = source.env;
      const fromEnv = env['LC_ALL'] || env['LC_MESSAGES'] || env['LANG'];
      if (fromEnv) return fromEnv;
      for (const file of ['/etc/default/locale', '/etc/locale.conf']) {
        const lang = parseKeyValueFile((await source.readText(file)) ?? '')['LANG'];
        if (lang) return lang;
      }
      return source.os.intlLocale;
    },
    async keyboard(): Promise<KeyboardFacts | null> {
      const fromEnv = firstOfList(source.env['XKB_DEFAULT_LAYOUT']);
      if (fromEnv) return { layout: fromEnv, variant: firstOfList(source.env['XKB_DEFAULT_VARIANT']), native: null, source: 'XKB_DEFAULT_LAYOUT' };
      // Debian's keyboard-configuration, then systemd-localed's files.
      const debian = parseKeyValueFile((await source.readText('/etc/default/keyboard')) ?? '');
      const debianLayout = firstOfList(debian['XKBLAYOUT']);
      if (debianLayout) return { layout: debianLayout, variant: firstOfList(debian['XKBVARIANT']), native: null, source: '/etc/default/keyboard' };
      const vconsole = parseKeyValueFile((await source.readText('/etc/vconsole.conf')) ?? '');
      const vconsoleLayout = firstOfList(vconsole['XKBLAYOUT']);
      if (vconsoleLayout) return { layout: vconsoleLayout, variant: firstOfList(vconsole['XKBVARIANT']), native: null, source: '/etc/vconsole.conf' };
      const xorg = (await source.readText('/etc/X11/xorg.conf.d/00-keyboard.conf')) ?? '';
      const xorgLayout = firstOfList(/Option\s+"XkbLayout"\s+"([^"]*)"/i.exec(xorg)?.[1]);
      if (xorgLayout)
        return {
          layout: xorgLayout,
          variant: firstOfList(/Option\s+"XkbVariant"\s+"([^"]*)"/i.exec(xorg)?.[1]),
          native: null,
          source: '/etc/X11/xorg.conf.d/00-keyboard.conf',
        };
      // A console keymap name (`de-latin1`) is close to, but not, an XKB name.
      const keymap = vconsole['KEYMAP'];
      if (keymap) return { layout: keymap.split(/[-_]/)[0]!, variant: null, native: keymap, source: '/etc/vconsole.conf KEYMAP' };
      return null;
    },
    async timezone(): Promise<TimezoneFacts | null> {
      const tz = ianaZone(source.env['TZ']);
      if (tz) return { name: tz, native: null, source: 'TZ' };
      const file = ianaZone((await source.readText('/etc/timezone'))?.split('\n')[0]);
      if (file) return { name: file, native: null, source: '/etc/timezone' };
      const link = await source.readLink('/etc/localtime');
      if (link?.includes('zoneinfo/')) {
        const zone = ianaZone(link);
        if (zone) return { name: zone, native: null, source: '/etc/localtime' };
      }
      const intl = ianaZone(source.os.intlTimeZone);
      return intl ? { name: intl, native: null, source: 'Intl' } : null;
    },
    async proxy() {
      return proxyFromEnv(source.env) ?? NO_PROXY;
    },
    async usbPortOf(device) {
      const name = /^\/dev\/([A-Za-z0-9]+)$/.exec(device)?.[1];
      if (!name) return null;
      // /sys/class/block/sdb → …/usb1/1-2/1-2:1.0/host6/…/block/sdb: the
      // last `bus-port[.port…]` segment is the USB device the disk sits on.
      const path = await source.realPath(`/sys/class/block/${name}`);
      if (!path) return null;
      const port = path
        .split('/')
        .filter((segment) => /^\d+-\d+(\.\d+)*$/.test(segment))
        .at(-1);
      return port ?? null;
    },
    async driveHolding() {
      // drivelist on Linux is lsblk, no addon to miss.
      return null;
    },
  };
}

export const linuxHost: HostAdapter = {
  ...linuxPlatform,
  async probeAccelerators() {
    return linuxProbe().accelerators();
  },
  probe: linuxProbe,
};
