// `launcher image customize` and `image deploy` on the Debian corpus
// (test/images/corpus.ts). The BIOS system is customized in the helper
// appliance (hostname, a user with a password, an SSH key, a file, a
// first-boot command, generalisation): a new catalog image with its parent
// and steps, the source unchanged, every change read back from the new image
// (inspect, files cat: the password hashed in the image's own yescrypt).
// The UEFI system and the LVM one (its root on a logical volume: the volume
// group activated read-write on the overlay) are customized too, and the
// three customized images made guests that boot at once on the stick, each
// to its first-boot marker (the LVM one's root found by the payload's boot
// step in the LVM metadata and mounted through a loop device). The LVM one is
// adapted too (`image adapt --for pocketvm`): its own /boot mounted under the
// root volume for the steps, so its grub.cfg there gets the kernel argument,
// and root=/dev/mapper/... kept.
// The BIOS (MBR) and UEFI (GPT) systems, imported, are written back out to raw,
// vmdk and vhdx files of a chosen size and to a loop block device. Each result
// is read back: its partition table by sfdisk (the last partition grown to
// the larger end, a GPT's backup header moved there and valid) and its file
// systems by `image inspect` of the deployed file itself in the helper
// appliance (the same hostname, root UUID and files as the source). Refused
// with exit 48 and nothing written: a target smaller than the image's last
// partition's end, a file on the stick, the stick's own device, an existing
// file. One appliance start for the whole file, resumed from the state an
// earlier test file saved (shared-appliance-state.ts; a boot when run alone).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { removeDir, tempDir } from '../dyntable/helpers.ts';
import { buildImageCorpus, type CorpusSystem } from '../images/corpus.ts';
import type { CatalogImage } from '../../src/images/image-catalog.ts';
import type { DeployResult } from '../../src/images/image-deploy.ts';
import type { AdaptResult } from '../../src/images/image-adapt.ts';
import type { ImageFacts } from '../../src/images/inspect-report.ts';
import { addStickUser, freshStick, launcher, launcherJson, loginArgs, repoRoot } from './harness.ts';

interface SfdiskDump {
  partitiontable: { label: string; lastlba?: number; partitions: { node: string; start: number; size: number }[] };
}
/** Where the customized images' first-boot command writes (inside the image). */
const FIRST_BOOT_MARKER = '/var/lib/pocketvm-first-boot-marker';
const sfdisk = (file: string) => (JSON.parse(execFileSync('sfdisk', ['--json', file], { encoding: 'utf8' })) as SfdiskDump).partitiontable;

describe('launcher image customize and deploy: a new image made offline; an image to a file or a disk (virtual to physical)', function () {
  this.timeout(3_600_000);
  let stick: Awaited<ReturnType<typeof freshStick>>;
  let dir: string;
  let corpus: CorpusSystem[];
  const system = (label: CorpusSystem['label']) => corpus.find((s) => s.label === label)!;
  const image = (args: string[]) => launcher(['image', ...args, '--stick', stick.root], { timeout: 1_200_000 });
  const imageJson = <T>(args: string[]) => launcherJson<T>(['image', ...args, '--stick', stick.root], { timeout: 1_200_000 });
  const at = (name: string) => join(dir, name);

  before(async () => {
    const built = await execa('node', ['build.js', 'payload', '--guest', 'appliance'], { cwd: repoRoot, reject: false, timeout: 1_500_000 });
    assert.equal(built.exitCode, 0, String(built.stderr));
    corpus = buildImageCorpus((message) => process.stderr.write(`      corpus: ${message}\n`));
    stick = await freshStick({ savedAppliance: true });
    dir = tempDir('pocketvm-deploy-it-');
    for (const [name, label] of [
      ['bios', 'bios-mbr'],
      ['uefi', 'uefi-gpt'],
      ['lvm', 'bios-lvm'],
    ] as const) {
      const imported = await image(['import', system(label).raw, '--name', name]);
      assert.equal(imported.exitCode, 0, imported.stderr);
    }
  });

  after(async () => {
    if (stick) {
      await launcher(['files', 'close', '--all', '--stick', stick.root], { timeout: 300_000 });
      await stick.dispose();
    }
    if (dir) removeDir(dir);
  });

  it('customizes the BIOS image into a new catalog image: its parent and steps recorded, the source unchanged', async () => {
    writeFileSync(at('motd'), 'customized by pocketvm\n');
    writeFileSync(at('app.log'), 'a line a program logged\n');
    // Bigger than the control socket's 1 MiB request line once in base64: the appliance's own cap carries it.
    writeFileSync(at('tool.bin'), randomBytes(3 << 20));
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'bob@test', '-f', at('bob_key')]);
    const sourceFile = join(stick.root, 'images', 'store', `${(await imageJson<CatalogImage>(['show', 'bios'])).json.sha256}.qcow2`);
    const sourceHash = execFileSync('sha256sum', [sourceFile], { encoding: 'utf8' });
    const made = await imageJson<{ name: string; sha256: string; parent: string; steps: string[] }>([
      'customize',
      'bios',
      '--name',
      'bios-web',
      '--hostname',
      'web1',
      '--user',
      'bob:correct horse',
      '--ssh-key',
      `${at('bob_key')}.pub`,
      '--copy-in',
      `${at('motd')}:/etc/motd`,
      '--copy-in',
      `${at('app.log')}:/var/log/app.log`,
      '--copy-in',
      `${at('tool.bin')}:/opt/tool.bin`,
      '--first-boot',
      `echo first-boot-ran > ${FIRST_BOOT_MARKER}`,
      '--generalize',
    ]);
    assert.equal(made.exitCode, 0, made.stderr || JSON.stringify(made.json));
    assert.equal(made.json.parent, 'bios');
    assert.equal(execFileSync('sha256sum', [sourceFile], { encoding: 'utf8' }), sourceHash, "the source's store file is as it was");
    const shown = await imageJson<CatalogImage>(['show', 'bios-web']);
    assert.equal(shown.json.lineage?.parentName, 'bios');
    assert.deepEqual(
      shown.json.lineage?.steps.map((s) => s.split(/[ :]/)[0]),
      ['hostname', 'user', 'ssh', 'copy', 'copy', 'copy', 'first', 'generalize'],
      'every step recorded, in order, generalisation last',
    );
    assert.ok(!JSON.stringify(shown.json).includes('correct horse'), 'the password is not in the catalog');
    const text = await image(['show', 'bios-web']);
    assert.match(text.stdout, /made from +bios/);
    assert.match(text.stdout, /step +hostname web1/);
  });

  it('the customized image holds every change: hostname, user, key, file, first-boot runner, generalised', async () => {
    const { exitCode, json, stderr } = await imageJson<ImageFacts>(['inspect', 'bios-web']);
    assert.equal(exitCode, 0, stderr);
    assert.equal(json.hostname, 'web1');
    assert.equal(json.machineId, null, 'machine-id emptied');
    assert.deepEqual(
      json.users.map((u) => u.name),
      ['root', 'alice', 'bob'],
    );
    const sha = (await imageJson<CatalogImage>(['show', 'bios-web'])).json.sha256;
    const opened = await launcherJson<{ name: string }>(['files', 'open', join(stick.root, 'images', 'store', `${sha}.qcow2`), '--stick', stick.root]);
    assert.equal(opened.exitCode, 0, opened.stderr);
    const cat = async (path: string) => {
      const run = await launcher(['files', 'cat', `${opened.json.name}:${path}`, '--stick', stick.root]);
      assert.equal(run.exitCode, 0, `${path}: ${run.stderr}`);
      return run.stdout;
    };
    try {
      assert.equal(await cat('/etc/motd'), 'customized by pocketvm\n');
      assert.match(await cat('/etc/hosts'), /^127\.0\.1\.1\tweb1$/m);
      // Debian 12's login.defs says YESCRYPT: the image's own chpasswd hashed it so ($y$).
      assert.match(await cat('/etc/shadow'), /^bob:\$y\$[^:]+:/m);
      assert.equal(await cat('/home/bob/.ssh/authorized_keys'), readFileSync(`${at('bob_key')}.pub`, 'utf8'));
      assert.match(await cat('/etc/pocketvm/first-boot.d/001-command.sh'), /first-boot-ran/);
      assert.match(await cat('/etc/pocketvm/first-boot.d/002-ssh-host-keys.sh'), /ssh-keygen -A/);
      assert.match(await cat('/etc/rc.local'), /\/usr\/lib\/pocketvm\/first-boot/);
      assert.equal(await cat('/etc/machine-id'), '');
      const tool = at('tool.got');
      const got = await launcher(['files', 'get', `${opened.json.name}:/opt/tool.bin`, tool, '--stick', stick.root]);
      assert.equal(got.exitCode, 0, got.stderr);
      assert.ok(readFileSync(tool).equals(readFileSync(at('tool.bin'))), 'the 3 MiB file copied in byte for byte');
      assert.equal(await cat('/var/log/app.log'), '', 'logs emptied by generalisation, done last');
    } finally {
      await launcher(['files', 'close', opened.json.name, '--stick', stick.root]);
    }
  });

  it('guest create --from refuses an unknown image, an image never inspected (exit 50); nothing is created', async () => {
    const unknown = await launcherJson<{ error: { reason: string; message: string } }>([
      'guest',
      'create',
      'nope',
      '--from',
      'no-such-image',
      '--json',
      '--stick',
      stick.root,
    ]);
    assert.equal(unknown.exitCode, 50, unknown.stderr);
    assert.equal(unknown.json.error.reason, 'no-source');
    assert.match(unknown.json.error.message, /no payload and no catalog image named no-such-image/);
    // The UEFI image was imported but not inspected yet in this file.
    const blind = await launcher(['guest', 'create', 'nope', '--from', 'uefi', '--stick', stick.root]);
    assert.equal(blind.exitCode, 50, blind.stderr);
    assert.match(blind.stderr, /uefi was never inspected/);
    assert.ok(!existsSync(join(stick.root, 'guests', 'nope')), 'no guest record was made');
  });

  it('customizes the UEFI image and the LVM one (its root on a logical volume) the same way', async () => {
    for (const [source, name, hostname] of [
      ['uefi', 'uefi-web', 'efi1'],
      ['lvm', 'lvm-web', 'lvm1'],
    ] as const) {
      const made = await imageJson<{ name: string; parent: string; steps: string[] }>([
        'customize',
        source,
        '--name',
        name,
        '--hostname',
        hostname,
        '--first-boot',
        `echo first-boot-ran > ${FIRST_BOOT_MARKER}`,
        '--generalize',
      ]);
      assert.equal(made.exitCode, 0, made.stderr || JSON.stringify(made.json));
      assert.deepEqual([made.json.name, made.json.parent], [name, source]);
      // Inspected as guest create wants it: the changes are in the image, its root where it was.
      const { exitCode, json, stderr } = await imageJson<ImageFacts>(['inspect', name]);
      assert.equal(exitCode, 0, stderr);
      assert.deepEqual([json.hostname, json.machineId], [hostname, null]);
      const root = json.fileSystems.find((f) => f.mountpoint === '/')!;
      const built = system(source === 'lvm' ? 'bios-lvm' : 'uefi-gpt');
      assert.deepEqual([root.uuid, root.volume], [built.rootUuid, built.lvm ? `${built.lvm.vg}/${built.lvm.lv}` : null]);
    }
  });

  it('adapts the LVM image (its root on a logical volume, /boot a partition of its own): /boot mounted for the steps, root=/dev/mapper kept', async () => {
    const started = performance.now();
    // --no-agent: the agent's packages are the adapt test's; here only where the steps run.
    const made = await imageJson<AdaptResult>(['adapt', 'lvm', '--for', 'pocketvm', '--name', 'lvm-stick', '--no-agent']);
    assert.equal(made.exitCode, 0, made.stderr || JSON.stringify(made.json));
    const change = (step: string) => made.json.changes.find((c) => c.step === step)!;
    // The kernel and grub.cfg are on /boot: the probe found them (no not-linux refusal, the serial console seen) only with it mounted.
    assert.deepEqual([change('serial').change, change('serial').what], [false, 'the kernel line has a serial console (console=ttyS0)']);
    assert.equal(change('uuid').change, false, 'root=/dev/mapper/corpusvg-root and /boot by UUID stay as they are');
    assert.equal(change('netnames').change, true);
    assert.match(made.json.made!.steps[0]!, /steps run on root LVM volume corpusvg\/root, \/boot partition 1\)$/);
    // Both changes read back on the host from a raw copy, with debugfs: ens3 renamed on the root volume (its one
    // segment at the PV's first extent, 1 MiB into partition 2: test/images/corpus.ts), and net.ifnames=0 on the
    // kernel line of the grub.cfg in the /boot partition, root= as it was.
    const raw = at('lvm-stick.raw');
    const shown = await imageJson<CatalogImage>(['show', 'lvm-stick']);
    execFileSync('qemu-img', ['convert', '-O', 'raw', join(stick.root, 'images', 'store', shown.json.file), raw]);
    const [boot, pv] = sfdisk(raw).partitions;
    const cat = (path: string, offset: number) =>
      execFileSync('debugfs', ['-R', `cat ${path}`, `${raw}?offset=${offset}`], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      assert.match(cat('/etc/network/interfaces', pv!.start * 512 + (1 << 20)), /^allow-hotplug eth0\niface eth0 inet dhcp$/m);
      const cfg = cat('/grub/grub.cfg', boot!.start * 512);
      assert.match(cfg, /^\s*linux \/vmlinuz-\S+ root=\/dev\/mapper\/corpusvg-root ro console=ttyS0,115200 net\.ifnames=0$/m, cfg);
    } finally {
      rmSync(raw, { force: true });
    }
    console.log(`      adapt of the LVM image and the read-back: ${((performance.now() - started) / 1000).toFixed(1)} s`);
  });

  it('the customized images made into guests (guest create --from) boot on the stick and run their first-boot command; stop, list, image rm', async () => {
    const on = ['--stick', stick.root];
    const created = await launcher(['guest', 'create', 'shop', '--from', 'bios-web', ...on]);
    assert.equal(created.exitCode, 0, created.stderr);
    assert.match(created.stdout, /created guest shop from image bios-web/);
    const taken = await launcher(['guest', 'create', 'shop', '--from', 'bios-web', ...on]);
    assert.notEqual(taken.exitCode, 0, 'the name is taken');
    assert.equal((await launcher(['guest', 'install', 'shop', ...on])).exitCode, 0);
    const store = (await imageJson<CatalogImage>(['show', 'bios-web'])).json;
    const storeFile = join(stick.root, 'images', 'store', store.file);
    const before = execFileSync('sha256sum', [storeFile], { encoding: 'utf8' });
    const inUse = await image(['rm', 'bios-web']);
    assert.equal(inUse.exitCode, 42, inUse.stderr);
    assert.match(inUse.stderr, /used by the guest shop/);

    // The UEFI and LVM images' guests boot beside shop: their boots and first-boot waits overlap its own.
    const others = [
      ['efi', 'uefi-web', 'efi1'],
      ['vols', 'lvm-web', 'lvm1'],
    ] as const;
    for (const [guest, from] of others) {
      assert.equal((await launcher(['guest', 'create', guest, '--from', from, ...on])).exitCode, 0);
      assert.equal((await launcher(['guest', 'install', guest, ...on])).exitCode, 0);
    }

    await addStickUser(stick.root, 'carol', 'carol image guest passphrase');
    const started: string[] = [];
    const marker = async (guest: string) => {
      let read = '';
      for (let i = 0; i < 120 && read !== 'first-boot-ran'; i++) {
        read = (await launcher(['exec', '--guest', guest, '--root', ...on, '--', 'cat', `/image${FIRST_BOOT_MARKER}`])).stdout.trim();
        if (read !== 'first-boot-ran') await new Promise((r) => setTimeout(r, 2_000));
      }
      return read;
    };
    try {
      for (const guest of ['shop', ...others.map(([g]) => g)]) {
        const run = await launcher(['run', '--detach', '--accel', 'tcg', '--guest', guest, ...loginArgs('carol'), ...on], {
          input: 'carol image guest passphrase\n',
          timeout: 900_000,
        });
        assert.equal(run.exitCode, 0, `${guest}: ${run.stderr}`);
        started.push(guest);
      }
      const listed = await launcherJson<Array<{ name: string; state: string; source?: { kind: string; name: string } }>>(['guest', 'list', ...on]);
      assert.deepEqual(
        listed.json.filter((g) => g.name === 'shop').map((g) => [g.state, g.source?.kind, g.source?.name]),
        [['running', 'image', 'bios-web']],
      );
      // The image's own init ran /etc/rc.local, whose first-boot runner ran the customize command.
      for (const [guest, hostname] of [['shop', 'web1'], ...others.map(([g, , h]) => [g, h])] as const) {
        assert.equal(await marker(guest), 'first-boot-ran', `${guest}: the first-boot marker written by the image`);
        const read = await launcher(['exec', '--guest', guest, ...on, '--', 'cat', '/image/etc/hostname']);
        assert.equal(read.stdout.trim(), hostname, `${guest}: the system on /image is the customized image`);
      }
      // The LVM image's root: its logical volume, mapped from the LVM metadata onto a loop device over the PV (partition 2).
      const mounts = await launcher(['exec', '--guest', 'vols', '--root', ...on, '--', 'cat', '/proc/mounts']);
      assert.match(mounts.stdout, /^\/dev\/loop\d+ \/image ext4 rw/m, mounts.stdout);
      const status = await launcher(['status', '--guest', 'shop', ...on]);
      assert.equal(status.exitCode, 0, status.stderr);
    } finally {
      // Every guest stopped before any failure is told: none is left running.
      const stopped = [];
      for (const guest of started) stopped.push({ guest, ...(await launcher(['stop', '--guest', guest, ...on], { timeout: 300_000 })) });
      for (const { guest, exitCode, stderr } of stopped) assert.equal(exitCode, 0, `${guest}: ${stderr}`);
    }
    const after = await launcherJson<Array<{ name: string; state: string }>>(['guest', 'list', ...on]);
    assert.equal(after.json.find((g) => g.name === 'shop')?.state, 'installed');
    assert.equal(execFileSync('sha256sum', [storeFile], { encoding: 'utf8' }), before, 'the image is never written');
    const overlay = join(stick.root, 'users', 'carol', 'disks', 'shop.system.qcow2');
    assert.ok(existsSync(overlay), "carol's system overlay");
    const info = JSON.parse(execFileSync('qemu-img', ['info', '--output=json', overlay], { encoding: 'utf8' })) as {
      encrypted?: boolean;
      'backing-filename'?: string;
    };
    assert.equal(info.encrypted, true, 'the overlay is encrypted');
    assert.match(info['backing-filename'] ?? '', new RegExp(`${store.file}$`), 'over the image store file');
    for (const guest of ['shop', ...others.map(([g]) => g)]) assert.equal((await launcher(['guest', 'delete', guest, '--yes', ...on])).exitCode, 0);
  });

  it('refuses a bad customization with exit 49 and adds nothing to the catalog', async () => {
    const before = (await imageJson<CatalogImage[]>(['list'])).json.length;
    for (const [args, reason] of [
      [['--hostname', 'not a name'], 'bad-hostname'],
      [['--user', 'Bad User'], 'bad-user'],
      [['--copy-in', `${at('missing')}:/etc/x`], 'bad-copy'],
      [[], 'no-steps'],
    ] as const) {
      const run = await imageJson<{ error: { reason: string } }>(['customize', 'bios', ...args]);
      assert.deepEqual([run.exitCode, run.json.error.reason], [49, reason], args.join(' '));
    }
    assert.equal((await imageJson<CatalogImage[]>(['list'])).json.length, before);
  });

  it('writes the BIOS image to a larger raw file with progress: the same bytes, its partition grown to the new end', async () => {
    const run = await image(['deploy', 'bios', at('bios.raw'), '--size', '512M']);
    assert.equal(run.exitCode, 0, run.stderr);
    assert.match(run.stderr, /100%/, 'progress is shown');
    assert.equal(statSync(at('bios.raw')).size, 512 << 20);
    const table = sfdisk(at('bios.raw'));
    assert.equal(table.label, 'dos');
    assert.equal(table.partitions.length, 1);
    assert.equal((table.partitions[0]!.start + table.partitions[0]!.size) * 512, 512 << 20, 'the partition reaches the end');
    // Everything before the old end is the image's content, byte for byte.
    const original = system('bios-mbr').raw;
    const head = (file: string) =>
      execFileSync('sh', ['-c', `head -c ${statSync(original).size} "$1" | tail -c +1025 | sha256sum`, 'sh', file], { encoding: 'utf8' });
    assert.equal(head(at('bios.raw')), head(original), 'past the MBR, the disk is the image');
    assert.ok(statSync(at('bios.raw')).blocks * 512 < statSync(at('bios.raw')).size, 'written sparse');
  });

  it('writes the UEFI image to vmdk and vhdx files; the GPT is valid at the new size, its last partition grown', async () => {
    const vmdk = await imageJson<DeployResult>(['deploy', 'uefi', at('uefi.vmdk'), '--format', 'vmdk', '--size', '1G']);
    assert.equal(vmdk.exitCode, 0, vmdk.stderr);
    assert.equal(vmdk.json.grownPartition, 3);
    const info = JSON.parse(execFileSync('qemu-img', ['info', '--output=json', at('uefi.vmdk')], { encoding: 'utf8' })) as {
      format: string;
      'virtual-size': number;
    };
    assert.deepEqual([info.format, info['virtual-size']], ['vmdk', 1 << 30]);
    execFileSync('qemu-img', ['convert', '-O', 'raw', at('uefi.vmdk'), at('uefi-back.raw')]);
    const table = sfdisk(at('uefi-back.raw'));
    assert.equal(table.label, 'gpt');
    assert.equal(table.lastlba, (1 << 30) / 512 - 34, "the backup GPT is at the disk's new end");
    assert.equal(table.partitions.at(-1)!.start + table.partitions.at(-1)!.size - 1, table.lastlba);
    assert.match(execFileSync('sgdisk', ['-v', at('uefi-back.raw')], { encoding: 'utf8' }), /No problems found/);
    const vhdx = await image(['deploy', 'uefi', at('uefi.vhdx'), '--format', 'vhdx']);
    assert.equal(vhdx.exitCode, 0, vhdx.stderr);
    assert.equal(JSON.parse(execFileSync('qemu-img', ['info', '--output=json', at('uefi.vhdx')], { encoding: 'utf8' })).format, 'vhdx');
  });

  it('the deployed files hold the same systems: image inspect reads them in the appliance', async () => {
    const custom = await image(['deploy', 'bios-web', at('web.vmdk'), '--format', 'vmdk']);
    assert.equal(custom.exitCode, 0, custom.stderr);
    const web = await imageJson<ImageFacts>(['inspect', at('web.vmdk')]);
    assert.equal(web.exitCode, 0, web.stderr);
    assert.equal(web.json.hostname, 'web1', 'the customized image deploys as customized');
    for (const [file, label] of [
      [at('bios.raw'), 'bios-mbr'],
      [at('uefi.vmdk'), 'uefi-gpt'],
    ] as const) {
      const { exitCode, json, stderr } = await imageJson<ImageFacts>(['inspect', file]);
      assert.equal(exitCode, 0, stderr);
      const built = system(label);
      assert.equal(json.hostname, built.hostname);
      assert.equal(json.machineId, built.machineId);
      assert.equal(json.partitionTable.kind, built.table);
      assert.equal(json.fileSystems.find((f) => f.mountpoint === '/')?.uuid, built.rootUuid);
      assert.equal(json.kernels[0]?.version, built.kernelVersion);
      if (built.srvUuid) assert.equal(json.fileSystems.find((f) => f.mountpoint === '/srv')?.uuid, built.srvUuid);
    }
  });

  it('refuses with exit 48 a target too small, a file on the stick, an existing file; nothing is written', async () => {
    writeFileSync(at('taken.raw'), 'a file of the person\n');
    const before = readdirSync(dir).sort();
    const small = await imageJson<{ error: { reason: string; usedBytes: number } }>(['deploy', 'bios', at('small.raw'), '--size', '100M']);
    assert.equal(small.exitCode, 48, small.stderr);
    assert.equal(small.json.error.reason, 'too-small');
    assert.equal(small.json.error.usedBytes, statSync(system('bios-mbr').raw).size);
    // The UEFI disk's used size is its last partition's end plus GPT's backup: 1 MiB short of it is refused too.
    const uefiSmall = await imageJson<{ error: { reason: string } }>(['deploy', 'uefi', at('small.vmdk'), '--format', 'vmdk', '--size', '600M']);
    assert.deepEqual([uefiSmall.exitCode, uefiSmall.json.error.reason], [48, 'too-small']);
    const onStick = await imageJson<{ error: { reason: string } }>(['deploy', 'bios', join(stick.root, 'copy.raw')]);
    assert.deepEqual([onStick.exitCode, onStick.json.error.reason], [48, 'stick']);
    assert.equal(existsSync(join(stick.root, 'copy.raw')), false);
    const exists = await imageJson<{ error: { reason: string } }>(['deploy', 'bios', at('taken.raw')]);
    assert.deepEqual([exists.exitCode, exists.json.error.reason], [48, 'exists']);
    assert.deepEqual(readdirSync(dir).sort(), before, 'no file was made or left behind');
    assert.equal(readFileSync(at('taken.raw'), 'utf8'), 'a file of the person\n');
  });

  it('writes to a block device (a loop device) and refuses the device the stick is on', async function () {
    const losetup = (args: string[]) => execFileSync('losetup', args, { encoding: 'utf8' }).trim();
    execFileSync('truncate', ['-s', '400M', at('disk.img')]);
    let disk: string;
    try {
      disk = losetup(['--find', '--show', at('disk.img')]);
    } catch (error) {
      console.log(`      no loop device here (${(error as Error).message.split('\n')[0]}): the block-device deploy is not checked`);
      this.skip();
    }
    const mounted = at('stickfs');
    let stickDisk: string | undefined;
    try {
      const written = await image(['deploy', 'bios', disk]);
      assert.equal(written.exitCode, 0, written.stderr);
      const table = sfdisk(disk);
      assert.equal((table.partitions[0]!.start + table.partitions[0]!.size) * 512, 400 << 20, "the partition reaches the device's end");
      // A stick on a device of its own: deploying onto that device is refused.
      execFileSync('truncate', ['-s', '64M', at('stick.img')]);
      execFileSync('mkfs.ext4', ['-q', at('stick.img')]);
      stickDisk = losetup(['--find', '--show', at('stick.img')]);
      execFileSync('mkdir', ['-p', mounted]);
      execFileSync('mount', [stickDisk, mounted]);
      const made = await launcher(['init-stick', join(mounted, 'stick')]);
      assert.equal(made.exitCode, 0, made.stderr);
      const refused = await launcherJson<{ error: { reason: string } }>(['image', 'deploy', 'bios', stickDisk, '--stick', join(mounted, 'stick')]);
      assert.deepEqual([refused.exitCode, refused.json.error.reason], [48, 'stick']);
    } finally {
      if (stickDisk) {
        execFileSync('umount', [mounted], { stdio: 'ignore' });
        losetup(['-d', stickDisk]);
      }
      losetup(['-d', disk]);
    }
  });
});
