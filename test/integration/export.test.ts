// launcher export (docs/export.md) against real consumers: alice's system
// (her encrypted overlay, with a file she wrote in /etc on the stick) is
// flattened and decrypted into a libvirt export only after she signs in and
// says so; the domain XML passes virt-xml-validate and boots under a real
// libvirtd (a session daemon this test starts, TCG) to the guest's ready
// line; the base alone goes into VMware and VirtualBox OVAs that virt-v2v
// reads (--print-source: the OVF's machine and disk bus) and `launcher image
// import` takes back; the NoCloud seed passes cloud-init's own schema check and cloud-localds makes
// its seed disk; the QEMU script boots the base; the Proxmox export's disk on
// virtio-scsi (Proxmox's default controller) boots to its ready line. Four
// boots: alice's on the stick, her export under libvirt, the base from the
// QEMU script, the base as the Proxmox configuration attaches it.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { ovfDiskFiles, tarMembers } from '../../src/images/ova.ts';
import { addStickUser, launcher, launcherJson, loginArgs, waitUntil } from './harness.ts';
import { startLibvirtd } from './libvirt-session.ts';

const GUEST = 'console-image';
const MARKER = `pocketvm-export-marker-${Date.now()}`;
const PASSPHRASE = 'alice export passphrase';

interface ExportJson {
  destination: string;
  files: string[];
  user: string | null;
  losses: Array<{ part: string; says: string }>;
  error?: { code: number; reason: string; message: string };
}

/** A file inside an ext4 disk image (any format qemu-img reads), read with debugfs: no mount, no boot. */
async function fileInDisk(disk: string, path: string, scratch: string): Promise<string> {
  const raw = join(scratch, 'read.raw');
  await execa('qemu-img', ['convert', '-O', 'raw', disk, raw]);
  try {
    return String((await execa('debugfs', ['-R', `cat ${path}`, raw], { reject: false })).stdout);
  } finally {
    await rm(raw, { force: true });
  }
}

describe('launcher export: a stick guest moved to libvirt, an OVA and a NoCloud seed (boots the real guest)', function () {
  this.timeout(900_000);
  let parent: string;
  let stick: string;
  const exportJson = (args: string[], input?: string) =>
    launcherJson<ExportJson>(['export', GUEST, ...args, '--stick', stick], input === undefined ? {} : { input });

  before(async () => {
    parent = await mkdtemp(join(tmpdir(), 'pocketvm-export-'));
    stick = join(parent, 'stick');
    const made = await launcher(['init-stick', stick, '--guest', GUEST]);
    assert.equal(made.exitCode, 0, made.stderr);
    await addStickUser(stick, 'alice', PASSPHRASE);
    // alice's own system: a file in /etc that only her overlay has.
    const run = await launcher(['run', '--detach', '--accel', 'tcg', '--guest', GUEST, '--stick', stick, ...loginArgs('alice')], { input: `${PASSPHRASE}\n` });
    assert.equal(run.exitCode, 0, run.stderr);
    const wrote = await launcher(['exec', '--guest', GUEST, '--stick', stick, '--root', '--', 'sh', '-c', `echo ${MARKER} > /etc/pocketvm-export && sync`]);
    assert.equal(wrote.exitCode, 0, wrote.stderr);
    assert.equal((await launcher(['stop', '--guest', GUEST, '--stick', stick])).exitCode, 0);
  });
  after(async () => {
    await launcher(['stop', '--force', '--guest', GUEST, '--stick', stick]);
    await rm(parent, { recursive: true, force: true });
  });

  it('refuses to write alice’s system decrypted without her say-so (exit 54), and writes nothing', async () => {
    const dir = join(parent, 'refused');
    const result = await exportJson(['--to', 'libvirt', dir, ...loginArgs('alice')], `${PASSPHRASE}\n`);
    assert.equal(result.exitCode, 54, result.stderr);
    assert.equal(result.json.error?.reason, 'not-confirmed');
    assert.ok(!existsSync(dir) && !existsSync(`${dir}.partial`));
  });

  it('refuses a guest that is not there, a flavour for a folder target and a key file that is no key (exit 54), writing nothing', async () => {
    const dir = join(parent, 'never');
    const key = join(parent, 'not-a-key');
    await writeFile(key, 'hello\n');
    for (const args of [
      ['export', 'nosuch', dir, '--to', 'qemu'],
      ['export', GUEST, dir, '--to', 'qemu', '--flavour', 'vmware'],
      ['export', GUEST, dir, '--to', 'nocloud', '--ssh-key', key],
    ]) {
      const result = await launcher([...args, '--stick', stick]);
      assert.equal(result.exitCode, 54, `${args.join(' ')}: ${result.stderr}`);
      assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr);
      assert.ok(!existsSync(dir) && !existsSync(`${dir}.partial`));
    }
  });

  it('refuses a destination that exists (exit 55)', async () => {
    const dir = join(parent, 'taken');
    await mkdir(dir);
    await writeFile(join(dir, 'keep'), 'mine');
    const result = await exportJson(['--to', 'qemu', dir]);
    assert.equal(result.exitCode, 55, result.stderr);
    assert.equal(await readFile(join(dir, 'keep'), 'utf8'), 'mine');
  });

  it('exports alice’s system to libvirt: her file is in the flattened disk, the XML validates, and libvirtd boots it to its ready line', async () => {
    const dir = join(parent, 'libvirt');
    const result = await exportJson(['--to', 'libvirt', dir, '--domain-type', 'qemu', ...loginArgs('alice'), '--yes'], `${PASSPHRASE}\n`);
    assert.equal(result.exitCode, 0, result.stderr);
    assert.equal(result.json.user, 'alice');
    assert.ok(result.json.losses.some((loss) => loss.part === 'encryption'));
    const disk = join(dir, `${GUEST}-system.qcow2`);
    const info = JSON.parse(String((await execa('qemu-img', ['info', '--output=json', disk])).stdout)) as {
      format: string;
      'backing-filename'?: string;
      encrypted?: boolean;
    };
    assert.equal(info.format, 'qcow2');
    assert.equal(info['backing-filename'], undefined, 'flattened: no backing file');
    assert.notEqual(info.encrypted, true);
    assert.equal((await fileInDisk(disk, '/etc/pocketvm-export', parent)).trim(), MARKER);
    const xml = join(dir, `${GUEST}.xml`);
    const validated = await execa('virt-xml-validate', [xml, 'domain'], { reject: false, all: true });
    assert.equal(validated.exitCode, 0, validated.all);

    // The session's QEMU runs as the daemon's user: it needs the folder (the console log goes there) and the disk.
    if (process.getuid?.() === 0) await execa('chown', ['-R', '65534:65534', dir]);
    await chmod(parent, 0o755);
    const home = await mkdtemp('/tmp/pvl');
    const libvirt = await startLibvirtd(home);
    try {
      await libvirt.virsh('define', xml);
      await libvirt.virsh('start', GUEST);
      const log = join(dir, `${GUEST}.console.log`);
      const ready = await waitUntil(() => existsSync(log) && readFileSync(log, 'utf8').includes('POCKETVM_READY'), 600_000, 1000);
      assert.ok(ready, `no POCKETVM_READY in ${log}`);
      await libvirt.virsh('destroy', GUEST);
      await libvirt.virsh('undefine', GUEST);
    } finally {
      await libvirt.stop();
      await rm(home, { recursive: true, force: true });
    }
  });

  it('exports the base alone to VMware and VirtualBox OVAs that virt-v2v reads and image import takes back', async () => {
    const ova = join(parent, `${GUEST}.ova`);
    const result = await exportJson(['--to', 'ova', ova, '--flavour', 'vmware']);
    assert.equal(result.exitCode, 0, result.stderr);
    assert.equal(result.json.user, null);
    assert.ok(
      result.json.losses.some((loss) => loss.part === 'boot'),
      'the loss report says VMware cannot boot the kernel beside the disk',
    );
    const bytes = await readFile(ova);
    const members = tarMembers((offset, length) => bytes.subarray(offset, offset + length), bytes.length);
    assert.deepEqual(
      members.map((m) => m.name),
      [`${GUEST}.ovf`, `${GUEST}.mf`, `${GUEST}-system.vmdk`],
    );
    const ovf = bytes.subarray(members[0]!.offset, members[0]!.offset + members[0]!.bytes).toString();
    assert.deepEqual(ovfDiskFiles(ovf), [`${GUEST}-system.vmdk`]);
    assert.match(ovf, /vmx-14/);
    // The base, without alice's file, read back from the vmdk.
    const vmdk = join(parent, 'member.vmdk');
    await writeFile(vmdk, bytes.subarray(members[2]!.offset, members[2]!.offset + members[2]!.bytes));
    const info = JSON.parse(String((await execa('qemu-img', ['info', '--output=json', vmdk])).stdout)) as {
      format: string;
      'format-specific'?: { data?: { 'create-type'?: string } };
    };
    assert.equal(info.format, 'vmdk');
    assert.equal(info['format-specific']?.data?.['create-type'], 'streamOptimized');
    assert.equal((await fileInDisk(vmdk, '/etc/pocketvm-export', parent)).trim(), '');
    assert.match(await fileInDisk(vmdk, '/init', parent), /POCKETVM_READY/);

    // virt-v2v as the independent reader of both dialects: it parses the OVF and names the machine it found
    // (a full conversion needs a guest OS its inspection knows; console-image's busybox system is none: docs/export.md).
    const vbox = join(parent, `${GUEST}-vbox.ova`);
    assert.equal((await exportJson(['--to', 'ova', vbox, '--flavour', 'virtualbox'])).exitCode, 0);
    for (const [file, bus] of [
      [ova, 'scsi'],
      [vbox, 'sata'],
    ] as const) {
      const read = await execa('virt-v2v', ['-i', 'ova', file, '--print-source'], { reject: false, all: true });
      assert.equal(read.exitCode, 0, read.all);
      assert.match(String(read.stdout), /source name: console-image/);
      assert.match(String(read.stdout), /memory: 268435456 \(bytes\)/);
      assert.match(String(read.stdout), /nr vCPUs: 1/);
      assert.match(String(read.stdout), new RegExp(`disks:\\s+0 \\[${bus}\\]`));
    }

    const imported = await launcherJson<{ name?: string; format?: string; error?: unknown }>(['image', 'import', ova, '--name', 'exported', '--stick', stick]);
    assert.equal(imported.exitCode, 0, imported.stderr);
    const shown = await launcher(['image', 'show', 'exported', '--stick', stick]);
    assert.equal(shown.exitCode, 0, shown.stderr);
    assert.match(shown.stdout, /exported/);
  });

  it('exports the base to a QEMU script that boots it to its ready line', async () => {
    const dir = join(parent, 'qemu');
    const result = await exportJson(['--to', 'qemu', dir]);
    assert.equal(result.exitCode, 0, result.stderr);
    const log = join(dir, 'console.log');
    const qemu = execa(join(dir, 'run.sh'), [], {
      env: { POCKETVM_ACCEL: 'tcg', POCKETVM_SERIAL: `file:${log}` },
      reject: false,
      all: true,
    });
    try {
      const ready = await waitUntil(() => existsSync(log) && readFileSync(log, 'utf8').includes('POCKETVM_READY'), 600_000, 1000);
      assert.ok(ready, `no POCKETVM_READY in ${log}`);
    } finally {
      qemu.kill('SIGTERM');
      await qemu;
    }
  });

  it('exports the base to Proxmox on its default VirtIO SCSI single controller, where the payload’s initramfs finds the system by its SCSI serial', async () => {
    const dir = join(parent, 'proxmox');
    const result = await exportJson(['--to', 'proxmox', dir]);
    assert.equal(result.exitCode, 0, result.stderr);
    const conf = await readFile(join(dir, `${GUEST}.conf`), 'utf8');
    assert.match(conf, /^scsihw: virtio-scsi-single$/m);
    const disk = /^scsi0: [^,]+,serial=(\S+)$/m.exec(conf);
    assert.ok(disk, conf);
    const append = /^args: .* -append '([^']*)'$/m.exec(conf)?.[1];
    assert.ok(append, conf);
    // No Proxmox node here: QEMU given the devices the configuration asks for (what qm start gives it, less Proxmox's extras).
    const qcow2 = result.json.files.find((f) => f.endsWith('.qcow2'))!;
    const log = join(dir, 'console.log');
    const qemu = execa(
      'qemu-system-x86_64',
      [
        ...['-machine', 'q35,accel=tcg', '-m', '256', '-nodefaults', '-no-user-config', '-display', 'none', '-serial', `file:${log}`],
        ...['-kernel', join(dir, 'vmlinuz'), '-initrd', join(dir, 'initrd.img'), '-append', append],
        ...['-blockdev', `driver=qcow2,node-name=d0,file.driver=file,file.filename=${join(dir, qcow2)}`],
        ...['-device', 'virtio-scsi-pci,id=scsihw0', '-device', `scsi-hd,bus=scsihw0.0,drive=d0,serial=${disk[1]!}`],
        ...['-device', 'virtio-serial-pci,id=vser0', '-chardev', `socket,id=agent,path=${join(dir, 'agent.sock')},server=on,wait=off`],
        ...['-device', 'virtserialport,bus=vser0.0,chardev=agent,name=org.qemu.guest_agent.0'],
      ],
      { reject: false, all: true },
    );
    try {
      const ready = await waitUntil(() => existsSync(log) && readFileSync(log, 'utf8').includes('POCKETVM_READY'), 600_000, 1000);
      assert.ok(ready, `no POCKETVM_READY in ${log}`);
      assert.match(readFileSync(log, 'utf8'), /Virtio SCSI HBA/);
    } finally {
      qemu.kill('SIGTERM');
      await qemu;
    }
  });

  it('writes a NoCloud seed that cloud-init’s schema accepts and cloud-localds packs', async () => {
    const dir = join(parent, 'seed');
    const key = join(parent, 'id.pub');
    await writeFile(key, 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@stick\n');
    const result = await exportJson(['--to', 'nocloud', dir, '--user', 'alice', '--ssh-key', key]);
    assert.equal(result.exitCode, 0, result.stderr);
    const userData = await readFile(join(dir, 'user-data'), 'utf8');
    assert.match(userData, /name: "alice"/);
    assert.match(await readFile(join(dir, 'meta-data'), 'utf8'), /local-hostname: "console-image"/);
    const schema = await execa('cloud-init', ['schema', '--config-file', join(dir, 'user-data')], { reject: false, all: true });
    assert.equal(schema.exitCode, 0, schema.all);
    const iso = join(parent, 'seed.iso');
    const packed = await execa('cloud-localds', ['-N', join(dir, 'network-config'), iso, join(dir, 'user-data'), join(dir, 'meta-data')], {
      reject: false,
      all: true,
    });
    assert.equal(packed.exitCode, 0, packed.all);
    const listing = String((await execa('isoinfo', ['-R', '-l', '-i', iso], { reject: false })).stdout) || String((await execa('file', [iso])).stdout);
    assert.match(listing, /cidata|user-data/i);
  });
});
