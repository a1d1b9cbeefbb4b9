// bench/boot-share: the share of the test corpus that boots on first try
// under each target the tests can run (issue 22's benchmark; goal 100 %).
//
// Images (--images, all by default), each with a boot chain of its own:
//   adapt     the adapt test's Debian (test/images/adapt-image.ts: its own
//             kernel and GRUB, an initramfs without virtio), imported; it
//             counts as booted at its marker on ttyS0 (its userland is up).
//   bios-mbr, uefi-gpt, bios-lvm
//             the images corpus (test/images/corpus.ts) after `image capture`:
//             their raw disks hold no boot code, capture gives them GRUB. They
//             boot the payload's kernel and initramfs from their own GRUB, and
//             that initramfs (pocketvm's, looking for a stick's system disk)
//             goes no further on a bare disk: they count as booted when it
//             starts ("Run /init as init process"), as image-capture's test.
// Targets (--targets, both by default):
//   stick     `image adapt --for pocketvm`, then one boot of the new image on
//             the stick's QEMU (src/images/boot-check.ts) with the devices
//             adapt says it boots with.
//   libvirt   `image adapt --for libvirt`, then the new image's disk (copied
//             out of the store, no backing file) defined under a libvirt
//             session daemon this bench starts, as virt-install would: q35,
//             its own firmware (SeaBIOS, or OVMF), the disk bus and NIC adapt
//             chose from the target table (src/images/hypervisor-targets.ts),
//             TCG; its serial console's log is read for the same line.
// One boot each (first try: no retry); an adapt that refuses or fails counts
// as not booted, with its reason; an adapt with nothing to change boots the
// image as it was. Never fails on a result.
//
//   node build.js bench boot-share [--images adapt,bios-mbr] [--targets stick] [--json]
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { ADAPT_MARKER, adaptImage } from '../test/images/adapt-image.ts';
import { buildImageCorpus } from '../test/images/corpus.ts';
import { startLibvirtd, type LibvirtSession } from '../test/integration/libvirt-session.ts';
import { waitUntil } from '../test/integration/harness.ts';
import { bootCheck, OVMF } from '../src/images/boot-check.ts';
import { DISK_TARGET, NIC_MODEL } from '../src/export/libvirt-domain.ts';
import type { DiskBus, NicModel } from '../src/images/hypervisor-targets.ts';
import { benchOptions } from './bench-options.ts';

const IMAGES = ['adapt', 'bios-mbr', 'uefi-gpt', 'bios-lvm'] as const;
const TARGETS = ['stick', 'libvirt'] as const;
type ImageLabel = (typeof IMAGES)[number];
type Target = (typeof TARGETS)[number];
const ADAPT_FOR: Record<Target, string> = { stick: 'pocketvm', libvirt: 'libvirt' };
/** Lines after which a boot goes no further: an initramfs that gave up on its root, a kernel that stopped. */
const FAIL_ON = ['Gave up waiting for root file system device', 'Dropping to a shell', 'Kernel panic'];
const BOOT_TIMEOUT_MS = 900_000;

const { json, say } = benchOptions(1);
const root = new URL('..', import.meta.url).pathname;
const launcher = join(root, 'launcher');

/** `--name a,b` restricted to `all`'s members, else all of them. */
function listOption<T extends string>(name: string, all: readonly T[]): T[] {
  const at = process.argv.indexOf(name);
  if (at < 0) return [...all];
  const asked = (process.argv[at + 1] ?? '').split(',').filter(Boolean);
  const unknown = asked.filter((item) => !all.includes(item as T));
  if (unknown.length) throw new Error(`${name}: unknown ${unknown.join(', ')} (known: ${all.join(', ')})`);
  return asked as T[];
}

interface Subject {
  label: ImageLabel;
  firmware: 'bios' | 'uefi';
  /** The serial line that counts as booted. */
  until: string;
  /** The image in the stick's store, or why there is none. */
  image: string | { error: string };
}

interface Outcome {
  image: ImageLabel;
  target: Target;
  booted: boolean;
  /** What adapt did: its steps' names, "nothing to change", or its refusal. */
  adapt: string;
  /** adapt's steps as its lineage says them. */
  steps: string[];
  devices: { disk: DiskBus; nic: NicModel } | null;
  /** Power-on to the line, when booted. */
  bootSeconds: number | null;
  reason: string;
}

/** A launcher's --json answer, or nothing when it printed none. */
function parsed(stdout: string): unknown {
  try {
    return JSON.parse(stdout);
  } catch {
    return {};
  }
}

const lastLine = (text: string) => text.trim().split('\n').at(-1) ?? '';

const base = mkdtempSync(join(tmpdir(), 'pocketvm-bench-boot-share-'));
const stick = join(base, 'stick');
const onStick = (args: string[]) => execa(launcher, [...args, '--stick', stick], { reject: false, env: { NO_COLOR: '1' }, timeout: 3_600_000, all: true });

async function storeFile(name: string): Promise<string> {
  const shown = await onStick(['image', 'show', name, '--json']);
  return join(stick, 'images', 'store', (JSON.parse(String(shown.stdout)) as { file: string }).file);
}

async function prepare(label: ImageLabel): Promise<Subject> {
  if (label === 'adapt') {
    const imported = await onStick(['image', 'import', adaptImage(say).raw, '--name', 'adapt-src']);
    return {
      label,
      firmware: 'bios',
      until: ADAPT_MARKER,
      image: imported.exitCode === 0 ? 'adapt-src' : { error: `import: ${lastLine(String(imported.all))}` },
    };
  }
  const system = buildImageCorpus(say).find((s) => s.label === label)!;
  const name = `${label}-src`;
  say(`${label}: image capture (gives it GRUB)`);
  const captured = await onStick(['image', 'capture', system.raw, '--name', name]);
  return {
    label,
    firmware: system.firmware,
    until: 'Run /init as init process',
    image: captured.exitCode === 0 ? name : { error: `capture exit ${captured.exitCode}: ${lastLine(String(captured.all))}` },
  };
}

/** `image adapt` for the target: the image to boot and its devices, or why there is none. */
async function adaptFor(
  source: string,
  target: Target,
): Promise<{ image: string; devices: Outcome['devices']; adapt: string; steps: string[] } | { error: string }> {
  const name = `${source}-${target}`;
  const adapted = await onStick(['image', 'adapt', source, '--for', ADAPT_FOR[target], '--name', name, '--json']);
  const result = parsed(String(adapted.stdout)) as {
    devices?: { disk: DiskBus; nic: NicModel };
    made?: { steps: string[] };
    error?: { code: number; reason: string; message: string };
  };
  // Each step as its name (the lineage's words before its first colon); --json keeps them whole.
  const steps = result.made?.steps ?? [];
  if (adapted.exitCode === 0) return { image: name, devices: result.devices ?? null, adapt: steps.map((step) => step.split(':')[0]).join(', '), steps };
  if (result.error?.reason === 'nothing-to-do') return { image: source, devices: null, adapt: 'nothing to change', steps: [] };
  return { error: `adapt exit ${adapted.exitCode} (${result.error?.reason ?? '?'}): ${result.error?.message ?? lastLine(String(adapted.all))}` };
}

async function bootOnStick(subject: Subject, image: string, devices: Outcome['devices']): Promise<number> {
  const overlay = join(base, `${image}.qcow2`);
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', await storeFile(image), overlay]);
  try {
    const disk = devices?.disk === 'sata' ? 'sata' : 'virtio';
    return (await bootCheck(stick, overlay, subject.firmware, join(base, image), BOOT_TIMEOUT_MS, { until: subject.until, failOn: FAIL_ON, disk })).ms / 1000;
  } finally {
    rmSync(overlay, { force: true });
  }
}

let libvirt: LibvirtSession | undefined;
/** The session daemon's state (outside base: its sockets' paths must stay short). */
let libvirtHome: string | undefined;

/** The domain virt-install would make for the adapted disk (the fields this bench needs), on TCG. */
function domainXml(name: string, firmware: 'bios' | 'uefi', disk: string, devices: NonNullable<Outcome['devices']>, dir: string): string {
  const ovmf = OVMF.find((f) => existsSync(f.code) && existsSync(f.vars));
  if (firmware === 'uefi' && !ovmf) throw new Error('no UEFI firmware (OVMF) on this machine');
  const loader =
    firmware === 'uefi' ? [`<loader readonly='yes' type='pflash'>${ovmf!.code}</loader>`, `<nvram template='${ovmf!.vars}'>${dir}/vars.fd</nvram>`] : [];
  const bus = DISK_TARGET[devices.disk];
  return `<domain type='qemu'>
  <name>${name}</name><memory unit='MiB'>512</memory><vcpu>1</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type>${loader.join('')}<boot dev='hd'/></os>
  <features><acpi/></features><on_reboot>destroy</on_reboot>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='${disk}'/><target dev='${bus.dev}a' bus='${bus.bus}'/></disk>
    <interface type='user'><model type='${NIC_MODEL[devices.nic]}'/></interface>
    <serial type='pty'><log file='${dir}/console.log' append='off'/><target port='0'/></serial>
    <memballoon model='none'/>
  </devices>
</domain>
`;
}

async function bootUnderLibvirt(subject: Subject, image: string, devices: Outcome['devices']): Promise<number> {
  // The session's QEMU runs as nobody: the disk is a copy of its own, in a folder nobody may write.
  const dir = join(base, `libvirt-${image}`);
  mkdirSync(dir, { recursive: true });
  const disk = join(dir, 'disk.qcow2');
  execFileSync('qemu-img', ['convert', '-O', 'qcow2', await storeFile(image), disk]);
  if (process.getuid?.() === 0) execFileSync('chown', ['-R', '65534:65534', dir]);
  execFileSync('chmod', ['755', base]);
  const name = `boot-share-${image}`;
  const xml = join(dir, 'domain.xml');
  writeFileSync(xml, domainXml(name, subject.firmware, disk, devices ?? { disk: 'virtio-blk', nic: 'virtio-net' }, dir));
  libvirtHome ??= mkdtempSync('/tmp/pvb');
  libvirt ??= await startLibvirtd(libvirtHome);
  const log = join(dir, 'console.log');
  const seen = () => (existsSync(log) ? readFileSync(log, 'latin1') : '');
  await libvirt.virsh('define', xml);
  try {
    const started = performance.now();
    await libvirt.virsh('start', name);
    await waitUntil(() => seen().includes(subject.until) || FAIL_ON.some((line) => seen().includes(line)), BOOT_TIMEOUT_MS, 1000);
    if (seen().includes(subject.until)) return (performance.now() - started) / 1000;
    const failed = FAIL_ON.find((line) => seen().includes(line));
    throw new Error(failed ? `the boot failed: ${failed}` : `no "${subject.until}" within ${BOOT_TIMEOUT_MS / 1000} s: ${lastLine(seen()).slice(0, 200)}`);
  } finally {
    await libvirt.virsh('destroy', name).catch(() => undefined);
    await libvirt.virsh('undefine', name, '--nvram').catch(() => undefined);
  }
}

async function tryTarget(subject: Subject, target: Target): Promise<Outcome> {
  const outcome: Outcome = { image: subject.label, target, booted: false, adapt: '', steps: [], devices: null, bootSeconds: null, reason: '' };
  if (typeof subject.image !== 'string') return { ...outcome, adapt: 'not run', reason: subject.image.error };
  say(`${subject.label} on ${target}: image adapt --for ${ADAPT_FOR[target]}`);
  const adapted = await adaptFor(subject.image, target);
  if ('error' in adapted) return { ...outcome, adapt: 'refused or failed', reason: adapted.error };
  Object.assign(outcome, { adapt: adapted.adapt, steps: adapted.steps, devices: adapted.devices });
  say(`${subject.label} on ${target}: one boot to "${subject.until}"`);
  try {
    const seconds = await (target === 'stick' ? bootOnStick : bootUnderLibvirt)(subject, adapted.image, adapted.devices);
    return { ...outcome, booted: true, bootSeconds: seconds, reason: `reached "${subject.until}"` };
  } catch (error) {
    const serial = (error as { details?: { serial?: string } }).details?.serial;
    return { ...outcome, reason: `${(error as Error).message.split('\n')[0]}${serial ? ` (serial: ${lastLine(serial).slice(0, 160)})` : ''}` };
  }
}

const images = listOption('--images', IMAGES);
const targets = listOption('--targets', TARGETS);
const outcomes: Outcome[] = [];
try {
  await execa(launcher, ['init-stick', stick]);
  await execa('node', ['build.js', 'payload', '--guest', 'appliance'], { cwd: root });
  for (const label of images) {
    const subject = await prepare(label);
    for (const target of targets) outcomes.push(await tryTarget(subject, target));
  }
} finally {
  await libvirt?.stop();
  if (libvirtHome) rmSync(libvirtHome, { recursive: true, force: true });
  await execa(launcher, ['files', 'close', '--all', '--stick', stick], { reject: false });
  rmSync(base, { recursive: true, force: true });
}

const share = targets.map((target) => {
  const tried = outcomes.filter((o) => o.target === target);
  const booted = tried.filter((o) => o.booted).length;
  return { target, booted, of: tried.length, percent: tried.length ? (100 * booted) / tried.length : 0 };
});
const load = loadavg()[0] ?? 0;
if (json) process.stdout.write(`${JSON.stringify({ loadavg: load, images, targets, share, outcomes }, null, 2)}\n`);
else
  process.stdout.write(
    [
      ...share.map((s) => `${s.target}: ${s.booted} of ${s.of} booted on first try (${s.percent.toFixed(0)} %)`),
      '',
      ...outcomes.map(
        (o) =>
          `${o.image.padEnd(9)} ${o.target.padEnd(8)} ${o.booted ? `booted in ${o.bootSeconds!.toFixed(1)} s` : 'not booted'}` +
          `  adapt: ${o.adapt}${o.devices ? ` (disk ${o.devices.disk}, NIC ${o.devices.nic})` : ''}; ${o.reason}`,
      ),
      `load ${load.toFixed(1)}`,
      '',
    ].join('\n'),
  );
