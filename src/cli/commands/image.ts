// `launcher image …`: the image store on the stick (docs/image-store.md).
// import brings a disk image or a whole disk in (checked, sparse, by content),
// list/show/rm read and change the catalog, inspect reads an image's
// configuration through the helper appliance without booting it.
import { rm } from 'node:fs/promises';
import type { Command } from 'commander';
import { ImageError } from '../../errors.ts';
import type { CatalogImage } from '../../images/image-catalog.ts';
import { importImage } from '../../images/image-import.ts';
import { inspectImage, resolveInspectTarget } from '../../images/image-inspect.ts';
import { type ImageStore, openImageStore } from '../../images/image-store.ts';
import { guestsUsing } from '../../guests/guests-using-image.ts';
import type { HiveState, WindowsFacts } from '../../images/windows-hives.ts';
import type { ImageFacts } from '../../images/inspect-report.ts';
import { openStick, resolveStickRoot } from '../../stick/stick-root.ts';
import type { StickLayout } from '../../stick/layout.ts';
import type { Output } from '../output.ts';
import { percentRenderer } from '../progress.ts';
import { appliance } from './files.ts';
import { registerImageAdapt } from './image-adapt.ts';
import { registerImageCapture } from './image-capture.ts';
import { registerImageCustomize } from './image-customize.ts';
import { registerImageDeploy } from './image-deploy.ts';
import { jsonOption, stickOption } from './options.ts';

const mib = (bytes: number) => (bytes >= 1 << 30 ? `${(bytes / (1 << 30)).toFixed(1)} GiB` : `${(bytes / (1 << 20)).toFixed(1)} MiB`);

async function withStore<T>(stick: string | undefined, work: (layout: StickLayout, store: ImageStore) => Promise<T>): Promise<T> {
  const layout = await openStick(resolveStickRoot(stick));
  const store = await openImageStore(layout);
  try {
    return await work(layout, store);
  } finally {
    store.catalog.close();
  }
}

function findImage(store: ImageStore, ref: string): CatalogImage {
  const image = store.catalog.find(ref);
  if (!image)
    throw new ImageError('imageMissing', `no image named ${ref} in the catalog`, {
      hint: 'launcher image list shows the catalog',
      details: { reason: 'no-such-image' },
    });
  return image;
}

function describeFacts(facts: ImageFacts): string[] {
  const lines = [
    `  os           ${facts.os.family}${facts.os.distribution ? ` ${facts.os.distribution}` : ''}${facts.os.version ? ` ${facts.os.version}` : ''}${facts.os.name ? ` (${facts.os.name})` : ''}`,
    `  architecture ${facts.architecture ?? 'unknown'}`,
    `  firmware     ${facts.firmware}, bootloader ${facts.bootloader ?? 'none found'}, partition table ${facts.partitionTable.kind ?? 'none'}`,
    `  hostname     ${facts.hostname ?? '-'}   machine-id ${facts.machineId ?? '-'}`,
    `  packages     ${facts.packages ? `${facts.packages.count ?? '?'} (${facts.packages.manager})` : '-'}`,
    `  users        ${facts.users.map((u) => `${u.name}(${u.uid})`).join(' ') || '-'}`,
  ];
  for (const k of facts.kernels) lines.push(`  kernel       ${k.file}${k.initramfs ? ` + ${k.initramfs}` : ''}`);
  for (const fs of facts.fileSystems)
    lines.push(
      `  ${fs.volume ? `LVM ${fs.volume} (partition ${fs.partition})` : fs.partition === 0 ? 'whole disk' : `partition ${fs.partition}`}  ${mib(fs.bytes)}  ${fs.type ?? 'unknown'}${fs.uuid ? ` UUID=${fs.uuid}` : ''}${fs.esp ? ' (ESP)' : ''}${fs.mountpoint ? ` on ${fs.mountpoint}` : ''}`,
    );
  for (const i of facts.network.interfaces) lines.push(`  network      ${i.name} ${i.method}${i.address ? ` ${i.address}` : ''}`);
  if (facts.windows) lines.push(...describeWindows(facts.windows));
  return lines;
}

function describeWindows(w: WindowsFacts): string[] {
  // Facts saved by an older inspect hold only `found`: say so rather than print nothing.
  if (!Array.isArray(w.drivers)) return ['  windows      found; inspect it again to read its registry hives'];
  const hive = (name: string, state: HiveState) => `${name} ${state.status === 'unreadable' ? `could not be read (${state.error})` : state.status}`;
  const virtio = (['viostor', 'vioscsi', 'netkvm'] as const).map((name) => `${name} ${w.virtio[name] ?? '-'}`).join(', ');
  return [
    `  windows      ${w.productName ?? 'edition unknown'}${w.editionId ? ` (${w.editionId}${w.installationType ? `, ${w.installationType}` : ''})` : ''}${w.build ? ` build ${w.build}` : ''}${w.displayVersion ? ` ${w.displayVersion}` : ''}`,
    `  drivers      ${w.drivers.length} (kernel and file-system services in ${w.controlSet ?? 'no control set'}); virtio: ${virtio}`,
    `  hives        ${hive('SOFTWARE', w.hives.software)}, ${hive('SYSTEM', w.hives.system)}`,
  ];
}

function describeImage(image: CatalogImage): string[] {
  const lines = [
    `${image.name}  sha256 ${image.sha256}`,
    `  size         ${mib(image.virtualBytes)} virtual, ${mib(image.storedBytes)} stored (qcow2)`,
    `  partitions   ${image.partitionTable.kind}: ${image.partitionTable.partitions.map((p) => `${p.number} ${mib(p.bytes)}`).join(', ') || '-'}`,
  ];
  for (const i of image.imports)
    lines.push(`  imported     ${i.importedAt} from ${i.source}${i.member ? ` (${i.member})` : ''} as ${i.format}, ${mib(i.sourceBytes)}`);
  if (image.lineage) {
    lines.push(`  made from    ${image.lineage.parentName} (${image.lineage.parent.slice(0, 16)}…) by image customize, ${image.lineage.madeAt}`);
    for (const step of image.lineage.steps) lines.push(`    step       ${step}`);
  }
  if (image.facts) lines.push(...describeFacts(image.facts as unknown as ImageFacts));
  else lines.push('  facts        not inspected yet (launcher image inspect NAME)');
  return lines;
}

export function registerImage(program: Command, output: () => Output): void {
  const image = program.command('image').description('the image store on the stick: import, inspect, list disk images (docs/image-store.md)');
  const sub = (name: string, description: string) => jsonOption(stickOption(image.command(name).description(description)));

  sub('import', 'import a disk image (qcow2, vmdk, vhd, vhdx, vdi, raw, OVA) or a whole disk into the store, checked and sparse')
    .argument('<source>', 'an image file or a block device')
    .option('--name <name>', 'its name in the catalog (default: from the file name)')
    .action(async (source: string, options: { stick?: string; name?: string }) => {
      const out = output();
      const shown = percentRenderer(out);
      const imported = await withStore(options.stick, (layout, store) =>
        importImage(layout, store, source, options.name === undefined ? {} : { name: options.name }, shown),
      );
      shown.finish();
      out.data(imported);
      for (const i of imported)
        out.line(
          i.deduplicated
            ? `${i.name}: the same content is in the store already (sha256 ${i.sha256.slice(0, 16)}…); its provenance was added`
            : `${i.name}: imported ${i.format}${i.member ? ` (${i.member})` : ''}, ${mib(i.virtualBytes)} virtual, ${mib(i.allocatedBytes)} on the stick, sha256 ${i.sha256.slice(0, 16)}…`,
        );
    });

  registerImageCapture(image, output);

  sub('list', 'the images in the store').action(async (options: { stick?: string }) => {
    const out = output();
    const images = await withStore(options.stick, (_layout, store) => Promise.resolve(store.catalog.list()));
    out.data(images);
    if (images.length === 0) out.line('no images in the store (launcher image import FILE)');
    for (const i of images) {
      const facts = i.facts as unknown as ImageFacts | undefined;
      const os = facts ? `${facts.os.distribution ?? facts.os.family} ${facts.os.version ?? ''}`.trim() : 'not inspected';
      out.line(`${i.name.padEnd(24)} ${i.sha256.slice(0, 12)}  ${mib(i.virtualBytes).padStart(10)}  ${os}`);
    }
  });

  sub('show', 'one image: its provenance, hashes and facts')
    .argument('<image>', 'a name or sha256 (prefix of 8 or more)')
    .action(async (ref: string, options: { stick?: string }) => {
      const out = output();
      const found = await withStore(options.stick, (_layout, store) => Promise.resolve(findImage(store, ref)));
      out.data(found);
      for (const line of describeImage(found)) out.line(line);
    });

  sub('rm', 'remove an image from the store (refused while a guest is made from it)')
    .argument('<image>', 'a name or sha256 (prefix of 8 or more)')
    .action(async (ref: string, options: { stick?: string }) => {
      const out = output();
      const removed = await withStore(options.stick, async (layout, store) => {
        const found = findImage(store, ref);
        const guests = await guestsUsing(layout, found);
        if (guests.length > 0)
          throw new ImageError('imageInUse', `${found.name} is used by the guest${guests.length > 1 ? 's' : ''} ${guests.join(', ')}`, {
            hint: 'delete those guests first (launcher guest delete NAME)',
            details: { reason: 'in-use', guests },
          });
        // The row goes first: a store file no row names is harmless (the next import of it takes it over).
        store.catalog.remove(found.sha256);
        await rm(store.fileOf(found), { force: true });
        return found;
      });
      out.data({ removed: removed.name, sha256: removed.sha256 });
      out.line(`removed ${removed.name}`);
    });

  sub('inspect', "read an image's configuration without booting it (through the helper appliance); a catalog image keeps the facts")
    .argument('<image>', 'a catalog name or sha256, or an image file')
    .action(async (ref: string, options: { stick?: string }) => {
      const out = output();
      const started = performance.now();
      const result = await withStore(options.stick, async (layout, store) => {
        const target = await resolveInspectTarget(store, ref);
        const app = (await appliance(out, options.stick, true))!;
        const { facts } = await inspectImage(layout, app.address, target);
        if (target.image) store.catalog.setFacts(target.image.sha256, facts as unknown as Record<string, unknown>, new Date().toISOString());
        return { name: target.image?.name ?? target.path, facts };
      });
      out.data({ image: result.name, ...result.facts, seconds: (performance.now() - started) / 1000 });
      out.line(result.name);
      for (const line of describeFacts(result.facts)) out.line(line);
    });

  registerImageCustomize(sub, output, withStore, findImage);
  registerImageDeploy(sub, output, withStore, findImage);
  registerImageAdapt(sub, output, withStore, findImage);
}
