// The HostProfile as guest-registry session facts: `Host\...` keys in the
// session layer (never persisted), so the guest can read what PC it is on.
// Absent facts are left out rather than written as empty values.
import type { SessionFact } from '../guestregistry/value.ts';
import type { HostProfile } from './host-profile.ts';

export type { SessionFact };

const INT32_MAX = 2 ** 31 - 1;

/**
 * Keys written (docs/host-probe.md, "`Host\...` session facts"):
 * `Host` (Os, OsName, OsVersion, Kernel, Arch, Fingerprint, Display, Locale, Keyboard,
 * KeyboardVariant, Timezone), `Host\Cpu`, `Host\Memory`, `Host\Accelerators`,
 * `Host\Stick`, `Host\Proxy`.
 */
export function hostFacts(profile: HostProfile): SessionFact[] {
  const facts: SessionFact[] = [];
  const str = (key: string, name: string, data: string | null | undefined) => {
    if (data) facts.push({ key, name, value: { type: 'string', data } });
  };
  const int = (key: string, name: string, data: number | null | undefined) => {
    if (typeof data !== 'number' || !Number.isFinite(data)) return;
    const whole = Math.trunc(data);
    facts.push({ key, name, value: whole >= -INT32_MAX - 1 && whole <= INT32_MAX ? { type: 'int32', data: whole } : { type: 'int64', data: BigInt(whole) } });
  };
  const bool = (key: string, name: string, data: boolean | null | undefined) => {
    if (typeof data === 'boolean') facts.push({ key, name, value: { type: 'bool', data } });
  };
  const multi = (key: string, name: string, data: string[]) => facts.push({ key, name, value: { type: 'multi-string', data } });

  str('Host', 'Os', profile.os.family);
  str('Host', 'OsName', profile.os.name);
  str('Host', 'OsVersion', profile.os.version);
  str('Host', 'Kernel', profile.os.kernel);
  str('Host', 'Arch', profile.os.machineArch ?? profile.os.arch);
  str('Host', 'Fingerprint', profile.fingerprint);
  str('Host', 'Display', profile.display?.kind);
  str('Host', 'Locale', profile.locale.locale);
  str('Host', 'Keyboard', profile.locale.keyboard?.layout);
  str('Host', 'KeyboardVariant', profile.locale.keyboard?.variant);
  str('Host', 'Timezone', profile.locale.timezone?.name);

  str('Host\\Cpu', 'Model', profile.cpu.model);
  int('Host\\Cpu', 'Cores', profile.cpu.cores);
  int('Host\\Cpu', 'Threads', profile.cpu.threads);
  multi('Host\\Cpu', 'Virtualization', profile.cpu.virtualization);
  bool('Host\\Cpu', 'Hypervisor', profile.cpu.hypervisor);

  int('Host\\Memory', 'TotalMiB', profile.memory.totalMiB);
  int('Host\\Memory', 'AvailableMiB', profile.memory.availableMiB);

  for (const accelerator of profile.accelerators) bool('Host\\Accelerators', accelerator.name, accelerator.usable);

  const stick = profile.stick;
  if (stick) {
    str('Host\\Stick', 'Kind', stick.kind);
    str('Host\\Stick', 'Mountpoint', stick.mountpoint);
    str('Host\\Stick', 'Device', stick.drive?.device);
    str('Host\\Stick', 'Bus', stick.drive?.bus);
    bool('Host\\Stick', 'Removable', stick.drive?.removable);
    bool('Host\\Stick', 'ReadOnly', stick.drive?.readOnly);
    if (typeof stick.drive?.sizeBytes === 'number')
      facts.push({ key: 'Host\\Stick', name: 'SizeBytes', value: { type: 'int64', data: BigInt(Math.trunc(stick.drive.sizeBytes)) } });
    str('Host\\Stick', 'UsbVendorId', stick.usbIdentity?.vendorId);
    str('Host\\Stick', 'UsbProductId', stick.usbIdentity?.productId);
    str('Host\\Stick', 'UsbSerial', stick.usbIdentity?.serial);
  }

  if (profile.proxy && profile.proxy.source !== 'none') {
    str('Host\\Proxy', 'Http', profile.proxy.http);
    str('Host\\Proxy', 'Https', profile.proxy.https);
    if (profile.proxy.noProxy.length > 0) multi('Host\\Proxy', 'NoProxy', profile.proxy.noProxy);
    str('Host\\Proxy', 'AutoConfigUrl', profile.proxy.autoConfigUrl);
  }
  return facts;
}
