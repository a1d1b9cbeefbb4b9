// A guest made from an imported image starts with the machine its descriptor
// described (src/guests/described-config.ts): memory, CPUs, network and the
// first MAC over the payload's defaults, each brought within what a guest
// may have; an adapted image finds the descriptor along its lineage
// (src/images/described-machine.ts, over a real catalog); and `guest create
// --from` records what it took with the guest.
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { configFromDescribed, describeFromDescriptor } from '../../src/guests/described-config.ts';
import { type GuestConfig, MAX_CPUS, MAX_MEMORY_MIB } from '../../src/guests/guest-config.ts';
import { createGuest } from '../../src/guests/guest-lifecycle.ts';
import { guestPaths, type GuestRecord, readJson } from '../../src/guests/guest-store.ts';
import { type DescribedMachine, describedMachine } from '../../src/images/described-machine.ts';
import { type CatalogImage, ImageCatalog } from '../../src/images/image-catalog.ts';
import { imageStorePaths, type StickLayout } from '../../src/stick/layout.ts';
import { removeDir, tempDir } from '../dyntable/helpers.ts';
import { makeStick, payloadBuilt } from './helpers.ts';

const defaults: GuestConfig = { network: 'user', display: 'none', shares: [], disks: [], devices: [] };
const needs = { minimumMiB: 256, minimumCpus: 1 };
const machine = (changes: Partial<DescribedMachine> = {}): DescribedMachine => ({ image: 'deb', source: '/x/deb.ova', nics: [], ...changes });

describe('configFromDescribed: a descriptor over the defaults', () => {
  it('takes memory, CPUs, network user and the first NIC’s MAC, and says so', () => {
    const { config, fromDescriptor } = configFromDescribed(
      { ...defaults, network: 'none' },
      needs,
      machine({ memoryMiB: 1024, cpus: 2, nics: [{ mac: '52:54:00:AA:BB:01', model: 'E1000' }] }),
    );
    assert.deepEqual(config, { ...defaults, memoryMiB: 1024, cpus: 2, network: 'user', mac: '52:54:00:aa:bb:01' });
    assert.deepEqual(
      fromDescriptor.taken.map((t) => [t.property, t.value]),
      [
        ['memory', 1024],
        ['cpus', 2],
        ['network', 'user'],
        ['mac', '52:54:00:aa:bb:01'],
      ],
    );
    assert.deepEqual(fromDescriptor.left, []);
    assert.equal(fromDescriptor.image, 'deb');
    assert.deepEqual(describeFromDescriptor(fromDescriptor), ['memory 1024 MiB', 'cpus 2', 'network user (1 NIC)', 'mac 52:54:00:aa:bb:01']);
  });

  it('a machine with no NIC gets no network and no MAC; what it does not say stays the default (auto)', () => {
    const { config, fromDescriptor } = configFromDescribed(defaults, needs, machine());
    assert.deepEqual(config, { ...defaults, network: 'none' });
    assert.deepEqual(fromDescriptor.taken, [{ property: 'network', value: 'none', note: 'the machine had no NIC' }]);
  });

  it('brings memory and CPUs within what the guest needs and may have, and notes each change', () => {
    const low = configFromDescribed(defaults, needs, machine({ memoryMiB: 64, cpus: 0.5 }));
    assert.equal(low.config.memoryMiB, 256);
    assert.equal(low.config.cpus, 1);
    assert.match(low.fromDescriptor.taken[0]!.note ?? '', /said 64 MiB; raised to the 256 MiB the guest needs at least/);
    const high = configFromDescribed(defaults, needs, machine({ memoryMiB: 4 * MAX_MEMORY_MIB, cpus: 1000 }));
    assert.equal(high.config.memoryMiB, MAX_MEMORY_MIB);
    assert.equal(high.config.cpus, MAX_CPUS);
    assert.match(high.fromDescriptor.taken[1]!.note ?? '', /said 1000; lowered to the 256 a guest may have/);
    assert.equal(configFromDescribed(defaults, needs, machine({ memoryMiB: 1000.4 })).config.memoryMiB, 1000);
  });

  it('several NICs make the one user-mode card with the first’s MAC; a MAC no card may have is left, the default kept', () => {
    const several = configFromDescribed(defaults, needs, machine({ nics: [{ mac: '00-50-56-01-02-03' }, { mac: '52:54:00:00:00:09' }] }));
    assert.equal(several.config.mac, '00:50:56:01:02:03');
    assert.deepEqual(
      several.fromDescriptor.taken.filter((t) => t.note).map((t) => t.note),
      ['2 NICs, made the one user-mode card', 'the first of 2 NICs'],
    );
    for (const mac of ['01:00:5e:00:00:01', '00:00:00:00:00:00', 'not-a-mac']) {
      const { config, fromDescriptor } = configFromDescribed(defaults, needs, machine({ nics: [{ mac }] }));
      assert.equal(config.mac, undefined, mac);
      assert.equal(config.network, 'user');
      assert.equal(fromDescriptor.left.length, 1, mac);
      assert.match(fromDescriptor.left[0]!.why, /default address is used/);
    }
  });
});

/** A catalog image row as `image import` and `image adapt` leave one. */
function image(name: string, sha: string): Omit<CatalogImage, 'imports' | 'facts' | 'inspectedAt'> {
  return {
    name,
    sha256: sha.repeat(64),
    file: `${sha.repeat(64)}.qcow2`,
    fileSha256: 'f'.repeat(64),
    virtualBytes: 1 << 30,
    storedBytes: 1 << 28,
    partitionTable: { kind: 'mbr', partitions: [] },
    createdAt: '2026-12-07T00:00:00Z',
  };
}

function addImage(catalog: ImageCatalog, name: string, sha: string, parent?: string): string {
  catalog.add(image(name, sha), { source: `/x/${name}.vmdk`, format: 'vmdk', sourceBytes: 1, importedAt: '2026-12-07T00:00:00Z' });
  const sha256 = sha.repeat(64);
  if (parent) catalog.setLineage(sha256, { parent: parent.repeat(64), parentName: 'deb', steps: ['drivers'], madeAt: '2026-12-07T00:00:00Z' });
  return sha256;
}

const described = (memoryMiB: number) => ({
  source: '/x/deb.ova',
  descriptor: { kind: 'ova', file: 'deb.ovf', memoryMiB, cpus: 2, nics: [{ mac: '52:54:00:aa:bb:01', model: 'E1000' }], diskBuses: ['sata'] },
  importedAt: '2026-12-07T00:00:00Z',
});

describe('describedMachine: the descriptor along an image’s lineage', () => {
  let dir: string;
  let catalog: ImageCatalog;
  beforeEach(() => {
    dir = tempDir('pocketvm-described-');
    catalog = ImageCatalog.open(join(dir, 'catalog.sqlite'));
  });
  afterEach(() => {
    catalog.close();
    removeDir(dir);
  });
  const byHash = (sha256: string) => catalog.byHash(sha256);

  it('an adapted child without a descriptor has its imported parent’s; one with its own has its own', () => {
    const parent = addImage(catalog, 'deb', 'a');
    catalog.addDescribed(parent, described(1024));
    const child = addImage(catalog, 'deb-pocketvm', 'b', 'a');
    const grandchild = addImage(catalog, 'deb-custom', 'c', 'b');
    for (const sha256 of [parent, child, grandchild]) {
      const found = describedMachine(catalog.byHash(sha256)!, byHash);
      assert.deepEqual(found, { image: 'deb', source: '/x/deb.ova', memoryMiB: 1024, cpus: 2, nics: [{ mac: '52:54:00:aa:bb:01', model: 'E1000' }] });
    }
    catalog.addDescribed(child, described(2048));
    assert.equal(describedMachine(catalog.byHash(grandchild)!, byHash)?.memoryMiB, 2048);
    assert.equal(describedMachine(catalog.byHash(grandchild)!, byHash)?.image, 'deb-pocketvm');
  });

  it('none for an image imported without a descriptor, or whose parent is gone from the catalog', () => {
    addImage(catalog, 'bare', 'a');
    assert.equal(describedMachine(catalog.byHash('a'.repeat(64))!, byHash), undefined);
    const orphan = addImage(catalog, 'orphan', 'd', 'e');
    assert.equal(describedMachine(catalog.byHash(orphan)!, byHash), undefined);
  });
});

describe('guest create --from an imported image: the descriptor’s machine, recorded with the guest', function () {
  this.timeout(60_000);
  let stick: { layout: StickLayout; remove: () => Promise<void> };
  before(async function () {
    if (!payloadBuilt()) this.skip();
    stick = await makeStick('pocketvm-described-guest-');
    const paths = imageStorePaths(stick.layout);
    mkdirSync(paths.store, { recursive: true });
    const catalog = ImageCatalog.open(paths.catalog);
    try {
      const parent = addImage(catalog, 'deb', 'a');
      catalog.addDescribed(parent, described(1024));
      const child = addImage(catalog, 'deb-pocketvm', 'b', 'a');
      const facts = { os: { family: 'linux' }, fileSystems: [{ partition: 1, volume: null, type: 'ext4', mountpoint: '/' }] };
      catalog.setFacts(child, facts, '2026-12-07T00:00:00Z');
      addImage(catalog, 'bare', 'c');
      catalog.setFacts('c'.repeat(64), facts, '2026-12-07T00:00:00Z');
    } finally {
      catalog.close();
    }
  });
  after(async () => {
    await stick?.remove();
  });

  it('the adapted image’s guest has the imported machine’s memory, CPUs and MAC in guest.json, and says where they came from', async () => {
    const record = await createGuest(stick.layout, 'deb', 'deb-pocketvm');
    const written = await readJson<GuestRecord>(guestPaths(stick.layout, 'deb').record);
    assert.deepEqual(written, record);
    assert.equal(record.config.memoryMiB, 1024);
    assert.equal(record.config.cpus, 2);
    assert.equal(record.config.network, 'user');
    assert.equal(record.config.mac, '52:54:00:aa:bb:01');
    assert.equal(record.fromDescriptor?.image, 'deb');
    assert.deepEqual(
      record.fromDescriptor?.taken.map((t) => t.property),
      ['memory', 'cpus', 'network', 'mac'],
    );
  });

  it('an image with no descriptor gets the payload’s defaults and no fromDescriptor', async () => {
    const record = await createGuest(stick.layout, 'plain', 'bare');
    assert.equal(record.fromDescriptor, undefined);
    assert.equal(record.config.memoryMiB, undefined);
    assert.equal(record.config.mac, undefined);
  });
});
