// HostProfile: what the launcher learnt about the PC it landed on, as one
// plain, serialisable value (docs/design.md: each stage hands the next a typed
// value). Every part a probe step could not learn is null, and the step says
// why in `notes`: a failed probe never stops a launch.
import { z } from 'zod';

const accelerator = z.enum(['kvm', 'whpx', 'hvf', 'tcg']);

export const AcceleratorProbeSchema = z.object({
  name: accelerator,
  /** Present and, as far as permissions and the OS tell, usable. Whether QEMU really runs under it is src/vmm's accelerator fallback's call. */
  usable: z.boolean(),
  reason: z.string(),
});

export const OsFactsSchema = z.object({
  family: z.enum(['linux', 'windows', 'darwin']),
  /** A person's name for the OS: `Debian GNU/Linux 12 (bookworm)`, `Windows 11 Pro`, `macOS`. */
  name: z.string().nullable(),
  /** The OS release: `12`, `23H2 (build 22631)`, `14.4.1`. */
  version: z.string().nullable(),
  /** The kernel's own version string (`os.release()`). */
  kernel: z.string(),
  /** The launcher's architecture (node's `process.arch`: x64, arm64). */
  arch: z.string(),
  /** The machine's, when it differs (an x64 launcher under Rosetta 2 on arm64). */
  machineArch: z.string().nullable(),
});

export const CpuFactsSchema = z.object({
  model: z.string().nullable(),
  /** Physical cores, when the OS says. */
  cores: z.int().positive().nullable(),
  /** Logical processors this process may use (what sizing divides). */
  threads: z.int().positive(),
  /** Hardware virtualisation extensions the CPU reports to this OS: `vmx` (Intel VT-x), `svm` (AMD-V), `hv` (macOS Hypervisor.framework support). */
  virtualization: z.array(z.string()),
  /** This host itself runs under a hypervisor (nested virtualisation then decides). */
  hypervisor: z.boolean().nullable(),
});

export const MemoryFactsSchema = z.object({
  totalMiB: z.int().positive(),
  /** What a new process can get without swapping (Linux MemAvailable, macOS free + inactive, Windows free). */
  availableMiB: z.int().nonnegative(),
});

export const DisplayFactsSchema = z.object({
  /** `x11`, `wayland` or `none` on Linux; Windows and macOS always have their own. */
  kind: z.enum(['x11', 'wayland', 'none', 'windows', 'quartz']),
  present: z.boolean(),
  /** The display name ($DISPLAY, $WAYLAND_DISPLAY) when there is one. */
  detail: z.string().nullable(),
});

export const StickDriveSchema = z.object({
  /** The drive as drivelist names it: `/dev/sdb`, `\\.\PHYSICALDRIVE2`, `/dev/disk4`. */
  device: z.string(),
  description: z.string().nullable(),
  /** Bus type as drivelist reports it (USB, SATA, NVME, …; UNKNOWN under lsblk without a transport). */
  bus: z.string().nullable(),
  removable: z.boolean(),
  usb: z.boolean().nullable(),
  system: z.boolean(),
  virtual: z.boolean().nullable(),
  sizeBytes: z.number().nullable(),
  readOnly: z.boolean(),
});

export const UsbIdentitySchema = z.object({
  /** Four hex digits, lower case: `0781`. */
  vendorId: z.string(),
  productId: z.string(),
  serial: z.string().nullable(),
  manufacturer: z.string().nullable(),
  product: z.string().nullable(),
  /** How the USB device was tied to the drive: its sysfs port path (Linux), or the only mass-storage device present. */
  matchedBy: z.enum(['port-path', 'only-mass-storage-device']),
});

export const StickFactsSchema = z.object({
  /** The stick root, symlinks resolved. */
  root: z.string(),
  /** The mount point holding the stick root (the longest mount point that is a prefix of it). */
  mountpoint: z.string().nullable(),
  drive: StickDriveSchema.nullable(),
  /**
   * `removable`: a removable drive (a real stick); `fixed-disk-folder`: a folder on a non-removable
   * disk (a checkout's demo stick, a copy on the host's disk; fine, only not portable);
   * `unknown`: the drive could not be listed.
   */
  kind: z.enum(['removable', 'fixed-disk-folder', 'unknown']),
  usbIdentity: UsbIdentitySchema.nullable(),
});

export const KeyboardFactsSchema = z.object({
  /** XKB layout name (`us`, `de`, `gb`, `fr`): what a guest's keymap is chosen from; null when the OS's own id has no known XKB name. */
  layout: z.string().nullable(),
  variant: z.string().nullable(),
  /** The OS's own id when it is not XKB: a Windows KLID (`00000407`), a macOS input source (`com.apple.keylayout.German`). */
  native: z.string().nullable(),
  /** Where it was read: a file, a registry value, an environment variable. */
  source: z.string(),
});

export const TimezoneFactsSchema = z.object({
  /** IANA name (`Europe/Berlin`), when known. */
  name: z.string().nullable(),
  /** The OS's own name when it is not IANA (Windows: `W. Europe Standard Time`). */
  native: z.string().nullable(),
  source: z.string(),
});

export const ProxyFactsSchema = z.object({
  http: z.string().nullable(),
  https: z.string().nullable(),
  /** Hosts that bypass the proxy. */
  noProxy: z.array(z.string()),
  /** A proxy auto-config (PAC) URL. */
  autoConfigUrl: z.string().nullable(),
  /** `env`, `registry` (Windows Internet Settings), `scutil` (macOS), or `none`. */
  source: z.string(),
});

export const LocaleFactsSchema = z.object({
  /** BCP 47-ish locale: `de_DE.UTF-8`, `en-US`. */
  locale: z.string().nullable(),
  keyboard: KeyboardFactsSchema.nullable(),
  timezone: TimezoneFactsSchema.nullable(),
});

export const ProbeNoteSchema = z.object({ step: z.string(), message: z.string() });

export const HostProfileSchema = z.object({
  schemaVersion: z.literal(1),
  probedAt: z.string(),
  /** How long the whole probe took (its steps run side by side, each bounded). */
  probeMs: z.number().nonnegative(),
  os: OsFactsSchema,
  cpu: CpuFactsSchema,
  memory: MemoryFactsSchema,
  accelerators: z.array(AcceleratorProbeSchema),
  display: DisplayFactsSchema.nullable(),
  stick: StickFactsSchema.nullable(),
  locale: LocaleFactsSchema,
  proxy: ProxyFactsSchema.nullable(),
  /** The salted host fingerprint (src/platform/host-fingerprint.ts); null without a stick to keep the salt on. */
  fingerprint: z.string().nullable(),
  /** One per step that failed, timed out, or has something to say. */
  notes: z.array(ProbeNoteSchema),
});

export type HostProfile = z.infer<typeof HostProfileSchema>;
export type OsFacts = z.infer<typeof OsFactsSchema>;
export type CpuFacts = z.infer<typeof CpuFactsSchema>;
export type MemoryFacts = z.infer<typeof MemoryFactsSchema>;
export type DisplayFacts = z.infer<typeof DisplayFactsSchema>;
export type StickFacts = z.infer<typeof StickFactsSchema>;
export type StickDrive = z.infer<typeof StickDriveSchema>;
export type UsbIdentity = z.infer<typeof UsbIdentitySchema>;
export type KeyboardFacts = z.infer<typeof KeyboardFactsSchema>;
export type TimezoneFacts = z.infer<typeof TimezoneFactsSchema>;
export type ProxyFacts = z.infer<typeof ProxyFactsSchema>;
export type ProbeNote = z.infer<typeof ProbeNoteSchema>;
