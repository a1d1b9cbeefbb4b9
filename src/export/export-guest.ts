// `launcher export` (docs/export.md): a stick guest written for another
// engine. The guest is described once (guest-descriptor.ts), its disks are
// written in the target's format (export-disk.ts), the target's own files
// beside them, and the loss report says what did not make it. Everything is
// written into DEST.partial and renamed into place at the end, so a failed
// export leaves nothing under the name asked for, and a name already taken is
// refused before anything is read.
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import type { UnlockedUser } from '../auth/users.ts';
import { ExportError } from '../errors.ts';
import { openGuestPayload } from '../payload/guest-payload.ts';
import { checkImageFile, guestImage, launchImage } from '../guests/image-source.ts';
import { checkOverlayBase } from '../session/features/image-system-feature.ts';
import { overlayBase } from '../session/system-disk.ts';
import { type StickLayout, systemOverlayPath } from '../stick/layout.ts';
import { type DiskSource, type OutputDiskFormat, writeDisk, writeEmptyDisk } from './export-disk.ts';
import { describeGuest, type GuestDescriptor } from './guest-descriptor.ts';
import { type LibvirtDomainType, libvirtDomain } from './libvirt-domain.ts';
import { type Loss, lossReport } from './loss-report.ts';
import { nocloudSeed } from './nocloud-seed.ts';
import { ovfManifest, writeOva } from './ova-package.ts';
import { type OvaFlavour, ovfDescriptor } from './ovf-descriptor.ts';
import { proxmoxConfig, proxmoxImportScript } from './proxmox-config.ts';
import { qemuScript } from './qemu-script.ts';
import type { ExportTarget } from './targets.ts';

export interface ExportRequest {
  guest: string;
  target: ExportTarget;
  /** A folder (libvirt, qemu, proxmox, nocloud) or a file (ova). */
  destination: string;
  /** Signed in, and agreed to have their system written decrypted: their overlay is flattened into the disk. */
  user?: UnlockedUser;
  flavour?: OvaFlavour;
  domainType?: LibvirtDomainType;
  /** nocloud: the guest's user name (default: the stick user named, else pocketvm) and SSH public keys. */
  seedUser?: string;
  sshKeys?: string[];
}

export interface ExportResult {
  guest: string;
  target: ExportTarget;
  flavour?: OvaFlavour;
  destination: string;
  /** What was written, relative to a folder destination (the OVA's members for an OVA). */
  files: string[];
  user: string | null;
  losses: Loss[];
  descriptor: GuestDescriptor;
}

export interface ExportProgress {
  step: (message: string) => void;
  progress: (percent: number) => void;
}

const SSH_KEY = /^(ssh-(rsa|ed25519|dss)|ecdsa-sha2-nistp\d+|sk-[\w@.-]+) [A-Za-z0-9+/=]+( [^\n]*)?$/;

/** The public keys of an authorized_keys-style file: one a line, comments and blank lines skipped. */
export async function readSshKeys(file: string): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new ExportError('exportSource', `--ssh-key ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, {
      details: { reason: 'bad-key', file },
    });
  }
  const keys = text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith('#'));
  const bad = keys.find((key) => !SSH_KEY.test(key));
  if (keys.length === 0 || bad !== undefined)
    throw new ExportError('exportSource', `--ssh-key ${file} is not an SSH public key file${bad ? ` (${bad.slice(0, 40)}…)` : ' (empty)'}`, {
      hint: 'give a .pub file: ssh-ed25519 AAAA… comment',
      details: { reason: 'bad-key', file },
    });
  return keys;
}

async function refuseTaken(path: string): Promise<void> {
  if (!existsSync(path)) return;
  const isEmptyDir = (await stat(path)).isDirectory() && (await readdir(path)).length === 0;
  if (!isEmptyDir)
    throw new ExportError('exportWrite', `${path} exists; export writes a new ${path.endsWith('.ova') ? 'file' : 'folder'} and never over one`, {
      hint: 'name another, or remove it first',
      details: { reason: 'exists', destination: path },
    });
  await rm(path, { recursive: true });
}

function noOverlay(user: UnlockedUser, guest: string): ExportError {
  return new ExportError('exportSource', `${user.name} has no system of their own in ${guest} yet (they never started it)`, {
    hint: `export without --user for the base alone`,
    details: { reason: 'no-overlay', user: user.name },
  });
}

/**
 * A catalog image's guest: the image's store file (checked whole against the
 * catalog's hash, as a launch checks it against what install pinned), and the
 * user's overlay over it when signed in, only if it was made over this file.
 */
async function catalogImageSource(layout: StickLayout, descriptor: GuestDescriptor, user: UnlockedUser | undefined): Promise<DiskSource> {
  const system = guestImage(layout, descriptor.facts.image!.sha256, descriptor.name);
  await checkImageFile(system, system.image.fileSha256, descriptor.name);
  if (!user) return { base: system.file, baseFormat: 'qcow2' };
  const overlay = systemOverlayPath(layout, user.name, descriptor.name);
  if (!existsSync(overlay)) throw noOverlay(user, descriptor.name);
  await checkOverlayBase(overlay, launchImage(system), user.name, descriptor.name);
  return { base: system.file, baseFormat: 'qcow2', overlay: { path: overlay, key: user.diskKey } };
}

/** The system disk's source: the base (checked in full), and the user's overlay over it when signed in. */
async function systemSource(layout: StickLayout, descriptor: GuestDescriptor, user: UnlockedUser | undefined): Promise<DiskSource> {
  if (descriptor.kind === 'catalog-image') return catalogImageSource(layout, descriptor, user);
  const payload = await openGuestPayload(layout.payloadRoot, descriptor.payload, { base: 'full' });
  if (!user) return { base: payload.base!.path, baseFormat: 'raw' };
  const chosen = await overlayBase(layout, payload, user.name, descriptor.name);
  if (!chosen.exists) throw noOverlay(user, descriptor.name);
  return { base: chosen.base.path, baseFormat: 'raw', overlay: { path: chosen.overlay, key: user.diskKey } };
}

async function writeDisks(
  layout: StickLayout,
  descriptor: GuestDescriptor,
  user: UnlockedUser | undefined,
  dir: string,
  format: OutputDiskFormat,
  progress: ExportProgress,
): Promise<string[]> {
  const extension = format === 'qcow2' ? 'qcow2' : 'vmdk';
  const names: string[] = [];
  for (const disk of descriptor.disks) {
    const name = `${descriptor.name}-${disk.name}.${extension}`;
    if (disk.role === 'system') {
      progress.step(`writing ${name} (${user ? `${user.name}'s system over the base, decrypted` : 'the base'})`);
      await writeDisk(layout.root, await systemSource(layout, descriptor, user), join(dir, name), format, progress.progress);
    } else {
      await writeEmptyDisk(layout.root, join(dir, name), disk.sizeBytes, format);
    }
    names.push(name);
  }
  return names;
}

async function writeText(dir: string, files: Record<string, string>, executable: string[] = []): Promise<string[]> {
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text, { mode: executable.includes(name) ? 0o755 : 0o644 });
  return Object.keys(files);
}

/** The kernel and initramfs beside the disks, for a guest that boots them directly; none for one that boots from its disk. */
async function copyBoot(descriptor: GuestDescriptor, dir: string): Promise<{ kernel: string; initrd: string } | undefined> {
  if (descriptor.boot.from === 'disk') return undefined;
  await copyFile(descriptor.boot.kernel, join(dir, 'vmlinuz'));
  await copyFile(descriptor.boot.initrd, join(dir, 'initrd.img'));
  return { kernel: 'vmlinuz', initrd: 'initrd.img' };
}

async function writeFolder(
  layout: StickLayout,
  request: ExportRequest,
  descriptor: GuestDescriptor,
  final: string,
  dir: string,
  progress: ExportProgress,
): Promise<string[]> {
  const json = { 'descriptor.json': `${JSON.stringify(descriptor, null, 2)}\n` };
  if (request.target === 'nocloud') {
    const seed = nocloudSeed(descriptor, {
      hostname: descriptor.name,
      user: request.seedUser ?? request.user?.name ?? 'pocketvm',
      sshKeys: request.sshKeys ?? [],
    });
    return writeText(dir, { ...seed, ...json });
  }
  const disks = await writeDisks(layout, descriptor, request.user, dir, 'qcow2', progress);
  const boot = await copyBoot(descriptor, dir);
  const files = [...disks, ...(boot ? [boot.kernel, boot.initrd] : [])];
  switch (request.target) {
    case 'libvirt': {
      const xml = libvirtDomain(
        descriptor,
        {
          ...(boot ? { kernel: join(final, boot.kernel), initrd: join(final, boot.initrd) } : {}),
          disks: disks.map((disk) => join(final, disk)),
          consoleLog: join(final, `${descriptor.name}.console.log`),
        },
        request.domainType ?? 'kvm',
      );
      return [...files, ...(await writeText(dir, { [`${descriptor.name}.xml`]: xml, ...json }))];
    }
    case 'qemu':
      return [...files, ...(await writeText(dir, { 'run.sh': qemuScript(descriptor, { ...(boot ?? {}), disks }), ...json }, ['run.sh']))];
    case 'proxmox':
      return [
        ...files,
        ...(await writeText(
          dir,
          { 'import.sh': proxmoxImportScript(descriptor, disks), [`${descriptor.name}.conf`]: proxmoxConfig(descriptor, 100, 'local-lvm'), ...json },
          ['import.sh'],
        )),
      ];
    default:
      throw new Error(`internal: ${request.target} is not a folder target`);
  }
}

async function writeOvaPackage(
  layout: StickLayout,
  request: ExportRequest,
  descriptor: GuestDescriptor,
  file: string,
  progress: ExportProgress,
): Promise<string[]> {
  const flavour = request.flavour ?? 'vmware';
  if (!descriptor.disks.some((disk) => disk.role === 'system'))
    throw new ExportError('exportSource', `${descriptor.name} has no system disk (its system is the payload's initramfs): an OVA carries disks only`, {
      hint: 'export it --to libvirt, qemu or proxmox, which boot the kernel and initramfs beside the disks',
      details: { reason: 'no-disk' },
    });
  const scratch = `${file}.disks`;
  await rm(`${file}.partial`, { force: true });
  await rm(scratch, { recursive: true, force: true });
  await mkdir(scratch);
  try {
    const disks = await writeDisks(layout, descriptor, request.user, scratch, 'vmdk-stream', progress);
    const ovfDisks = [];
    for (const [index, disk] of disks.entries())
      ovfDisks.push({ file: disk, fileBytes: (await stat(join(scratch, disk))).size, capacityBytes: descriptor.disks[index]!.sizeBytes });
    const ovfName = `${descriptor.name}.ovf`;
    const ovf = { name: ovfName, data: Buffer.from(ovfDescriptor(descriptor, ovfDisks, flavour)) };
    const diskMembers = disks.map((disk) => ({ name: disk, data: { path: join(scratch, disk) } }));
    progress.step(`packing ${basename(file)}`);
    const mf = { name: `${descriptor.name}.mf`, data: await ovfManifest([ovf, ...diskMembers]) };
    await writeOva(file, [ovf, mf, ...diskMembers]);
    return [ovf.name, mf.name, ...disks];
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

export async function exportGuest(layout: StickLayout, request: ExportRequest, progress: ExportProgress): Promise<ExportResult> {
  const final = resolve(request.destination);
  await refuseTaken(final);
  const descriptor = await describeGuest(layout, request.guest);
  const target = request.target;
  let files: string[];
  if (target === 'vmware-ova' || target === 'virtualbox-ova') {
    files = await writeOvaPackage(layout, { ...request, flavour: target === 'vmware-ova' ? 'vmware' : 'virtualbox' }, descriptor, final, progress);
  } else {
    const partial = `${final}.partial`;
    await rm(partial, { recursive: true, force: true });
    await mkdir(partial, { recursive: true });
    try {
      files = await writeFolder(layout, request, descriptor, final, partial, progress);
      await rename(partial, final);
    } catch (error) {
      await rm(partial, { recursive: true, force: true });
      throw error;
    }
  }
  return {
    guest: descriptor.name,
    target,
    ...(target.endsWith('-ova') ? { flavour: target === 'vmware-ova' ? ('vmware' as const) : ('virtualbox' as const) } : {}),
    destination: final,
    files,
    user: request.user?.name ?? null,
    losses: lossReport(descriptor, target, request.user?.name),
    descriptor,
  };
}
