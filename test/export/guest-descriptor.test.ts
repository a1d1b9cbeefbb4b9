// What `launcher export` describes of a guest made from a catalog image
// (guest create --from): its system disk is the image's store file (qcow2),
// it boots from that disk's own bootloader under the firmware inspect found
// (UEFI for an ESP, else BIOS), on virtio only where an `image adapt` in its
// lineage readied its initramfs for it; an image with no bootloader of its own
// is refused with one line (54, no-bootloader) before anything is written.
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { adaptedDevices } from '../../src/export/catalog-image-guest.ts';
import { describeGuest } from '../../src/export/guest-descriptor.ts';
import { devicesOn } from '../../src/export/targets.ts';
import { PocketError } from '../../src/errors.ts';
import { setProperty } from '../../src/guests/guest-config.ts';
import { commitGuest, createGuest, stageChange } from '../../src/guests/guest-lifecycle.ts';
import { guestPaths } from '../../src/guests/guest-store.ts';
import { ImageCatalog } from '../../src/images/image-catalog.ts';
import { imageStorePaths, stickLayout, type StickLayout } from '../../src/stick/layout.ts';
import { USER_NETWORK_MAC } from '../../src/vmm/qemu-args.ts';
import { removeDir, tempDir } from '../dyntable/helpers.ts';
import { makeStick, payloadBuilt } from '../guests/helpers.ts';

const ROOT_UUID = '0d6f3c1e-2b4a-4c5d-8e9f-a1b2c3d4e5f6';

/** The facts `image inspect` keeps for a Debian with GRUB (the fields the descriptor reads). */
function debianFacts(changes: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    os: { family: 'linux', distribution: 'debian', version: '12', codename: 'bookworm', name: 'Debian GNU/Linux 12' },
    firmware: 'bios',
    bootloader: 'grub',
    fileSystems: [{ partition: 1, volume: null, type: 'ext4', uuid: ROOT_UUID, label: 'root', mountpoint: '/', esp: false }],
    ...changes,
  };
}

/** A catalog image in the stick's store (its file a few bytes: nothing here reads it) and a guest made from it. */
function addImage(
  layout: StickLayout,
  name: string,
  sha: string,
  facts: Record<string, unknown>,
  lineage?: { parent: string; parentName: string; steps: string[] },
) {
  const paths = imageStorePaths(layout);
  mkdirSync(paths.store, { recursive: true });
  writeFileSync(join(paths.store, `${sha}.qcow2`), 'QFI\xfb');
  const catalog = ImageCatalog.open(paths.catalog);
  try {
    const at = '2026-12-07T00:00:00Z';
    catalog.add(
      {
        name,
        sha256: sha,
        file: `${sha}.qcow2`,
        fileSha256: 'f'.repeat(64),
        virtualBytes: 3 << 30,
        storedBytes: 1 << 29,
        partitionTable: { kind: 'dos', partitions: [] },
        createdAt: at,
      },
      { source: `/in/${name}.vmdk`, format: 'vmdk', sourceBytes: 1 << 29, importedAt: at },
    );
    catalog.setFacts(sha, facts, at);
    if (lineage) catalog.setLineage(sha, { ...lineage, madeAt: at });
  } finally {
    catalog.close();
  }
}

function addGuest(layout: StickLayout, guest: string, image: string, sha: string, config: Record<string, unknown> = {}) {
  const paths = guestPaths(layout, guest);
  mkdirSync(paths.dir, { recursive: true });
  const record = {
    format: 1,
    name: guest,
    source: { kind: 'image', name: image, sha256: sha },
    config: { network: 'user', display: 'none', shares: [], disks: [], devices: [], ...config },
    createdAt: '2026-12-07T00:00:00Z',
  };
  writeFileSync(paths.record, JSON.stringify(record));
}

describe('describeGuest: a guest made from a catalog image', function () {
  let stick: Awaited<ReturnType<typeof makeStick>> | undefined;
  before(async function () {
    if (!payloadBuilt()) this.skip();
    stick = await makeStick('pocketvm-describe-image-');
  });
  after(() => stick?.remove());

  it('boots from the image store file by its own GRUB under BIOS, on SATA and e1000 when nothing says it drives virtio', async () => {
    const { layout } = stick!;
    const sha = 'a'.repeat(64);
    addImage(layout, 'deb', sha, debianFacts());
    addGuest(layout, 'deb', 'deb', sha, { memoryMiB: 1024, cpus: 2, shares: [{ name: 'docs', table: 'FIT', guestPath: '/host/docs' }] });
    const descriptor = await describeGuest(layout, 'deb');
    assert.equal(descriptor.kind, 'catalog-image');
    assert.deepEqual(descriptor.boot, { from: 'disk', bootloader: 'grub' });
    assert.equal(descriptor.firmware, 'bios');
    assert.equal(descriptor.memoryMiB, 1024);
    assert.deepEqual(descriptor.disks, [
      { role: 'system', name: 'system', base: join(imageStorePaths(layout).store, `${sha}.qcow2`), baseFormat: 'qcow2', sizeBytes: 3 << 30, bus: 'virtio-blk' },
    ]);
    assert.deepEqual(descriptor.facts.image, { name: 'deb', sha256: sha, distribution: 'debian' });
    assert.deepEqual(descriptor.facts.rootFileSystem, { type: 'ext4', uuid: ROOT_UUID, label: 'root' });
    assert.deepEqual(descriptor.facts.drives, { diskBus: null, nicModel: null });
    assert.deepEqual(descriptor.stickOnly.shares, ['docs (/host/docs)']);
    assert.deepEqual(devicesOn('libvirt', descriptor.facts.drives), { diskBus: 'sata', nicModel: 'e1000' });
  });

  it('boots by UEFI an image inspect found an ESP on, on virtio where an adapt of an image it was made from readied it', async () => {
    const { layout } = stick!;
    const [parent, adapted, customized] = ['b', 'c', 'd'].map((c) => c.repeat(64)) as [string, string, string];
    const efi = debianFacts({ firmware: 'uefi', bootloader: 'grub' });
    addImage(layout, 'efi', parent, efi);
    addImage(layout, 'efi-pocketvm', adapted, efi, {
      parent,
      parentName: 'efi',
      steps: ['adapt for pocketvm: disk virtio-blk, NIC virtio-net', 'drivers: virtio_blk added'],
    });
    addImage(layout, 'efi-web', customized, efi, { parent: adapted, parentName: 'efi-pocketvm', steps: ['install nginx'] });
    addGuest(layout, 'web', 'efi-web', customized);
    const descriptor = await describeGuest(layout, 'web');
    assert.equal(descriptor.firmware, 'uefi');
    assert.deepEqual(descriptor.facts.drives, { diskBus: 'virtio-blk', nicModel: 'virtio-net' });
    // Proxmox offers virtio-blk beside its own virtio-scsi; VMware offers neither virtio: the fallback.
    assert.deepEqual(devicesOn('proxmox', descriptor.facts.drives), { diskBus: 'virtio-blk', nicModel: 'virtio-net' });
    assert.deepEqual(devicesOn('vmware-ova', descriptor.facts.drives), { diskBus: 'sata', nicModel: 'e1000' });
    assert.deepEqual(devicesOn('virtualbox-ova', descriptor.facts.drives), { diskBus: 'sata', nicModel: 'virtio-net' });
  });

  it('refuses an image with no bootloader of its own in one line (54, no-bootloader), naming the image', async () => {
    const { layout } = stick!;
    const sha = 'e'.repeat(64);
    addImage(layout, 'rootfs', sha, debianFacts({ firmware: 'unknown', bootloader: null }));
    addGuest(layout, 'bare', 'rootfs', sha);
    await assert.rejects(describeGuest(layout, 'bare'), (error: unknown) => {
      assert.ok(error instanceof PocketError, String(error));
      assert.equal(error.exitCode, 54);
      assert.equal(error.details['reason'], 'no-bootloader');
      assert.match(error.message, /image rootfs has no bootloader/);
      assert.match(error.hint ?? '', /image adapt does not install a bootloader/);
      assert.equal(error.message.includes('\n'), false, 'one line');
      return true;
    });
  });
});

describe('adaptedDevices: the devices an adapt record in the lineage names', () => {
  it('reads the first record, keeps only a bus and model the hypervisor offers, and ignores other steps', () => {
    assert.deepEqual(adaptedDevices(['adapt for proxmox: disk virtio-scsi, NIC virtio-net (steps run on root LVM volume vg/root)']), {
      diskBus: 'virtio-scsi',
      nicModel: 'virtio-net',
    });
    assert.deepEqual(adaptedDevices(['adapt for virtualbox: disk sata, NIC e1000']), { diskBus: 'sata', nicModel: 'e1000' });
    assert.deepEqual(adaptedDevices(['adapt for vmware: disk virtio-blk, NIC vmxnet3']), { diskBus: null, nicModel: 'vmxnet3' });
    assert.equal(adaptedDevices(['install nginx', 'adapt for nowhere: disk sata, NIC e1000']), undefined);
  });
});

describe('describeGuest: names', () => {
  let root: string;
  beforeEach(() => {
    root = tempDir('pocketvm-describe-');
  });
  afterEach(() => removeDir(root));

  it('refuses a name that is neither a guest nor a payload', async () => {
    await assert.rejects(describeGuest(stickLayout(root), 'nobody'), (error: unknown) => {
      assert.ok(error instanceof PocketError);
      assert.equal(error.details.reason, 'no-guest');
      return true;
    });
  });

  it("a guest's own MAC is its NIC's and the one its kernel command line names; without one, the stick's default", async function () {
    if (!payloadBuilt()) this.skip();
    this.timeout(60_000);
    const stick = await makeStick('pocketvm-describe-mac-');
    try {
      await createGuest(stick.layout, 'web', 'default');
      await stageChange(stick.layout, 'web', (config) => setProperty(config, 'network', 'user'));
      await commitGuest(stick.layout, 'web');
      assert.deepEqual((await describeGuest(stick.layout, 'web')).nics, [{ model: 'virtio-net', mac: USER_NETWORK_MAC, network: 'user' }]);
      await stageChange(stick.layout, 'web', (config) => setProperty(config, 'mac', '52:54:00:aa:bb:01'));
      await commitGuest(stick.layout, 'web');
      const described = await describeGuest(stick.layout, 'web');
      assert.deepEqual(described.nics, [{ model: 'virtio-net', mac: '52:54:00:aa:bb:01', network: 'user' }]);
      assert.equal(described.boot.from, 'kernel');
      assert.match(described.boot.from === 'kernel' ? described.boot.cmdline : '', / pocketvm\.net=52:54:00:aa:bb:01( |$)/);
    } finally {
      await stick.remove();
    }
  });
});
