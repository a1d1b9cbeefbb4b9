// `launcher image customize IMAGE` (docs/image-store.md, "Customize"): a new
// catalog image made offline from a catalog image, in the helper appliance.
// A qcow2 overlay over the source's store file is made in images/incoming/,
// plugged read-write into the appliance, where pocketvm-customize mounts the
// image's root file system (its partition, or its LVM volume, from the
// image's facts) and applies
// the steps in order, generalisation last; then the overlay is imported as a
// new image (flattened, hashed by content, its row written, src/images/image-import.ts)
// with its parent and steps recorded (`image show` lists them). The source's
// store file is only ever the overlay's read-only backing: it stays as it was.
import { readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { randomBytes, createHash } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { ImageError } from '../errors.ts';
import { applianceRequest } from '../appliance/appliance-client.ts';
import { type ApplianceAddress, type CustomizeStep, MAX_COPY_IN_BYTES } from '../appliance/appliance-protocol.ts';
import type { StickLayout } from '../stick/layout.ts';
import type { CatalogImage } from './image-catalog.ts';
import { importDisk, type ImportEvents, type ImportedImage } from './image-import.ts';
import { catalogFacts } from './image-inspect.ts';
import type { ImageFacts } from './inspect-report.ts';
import { IMAGE_NAME_PATTERN, imageNameFor, type ImageStore } from './image-store.ts';
import { lastWords, runQemuImg } from './qemu-img.ts';

export interface CustomizeOptions {
  name?: string;
  hostname?: string;
  /** NAME or NAME:PASSWORD. */
  users: string[];
  /** [NAME:]FILE (NAME: the one --user when there is one). */
  sshKeys: string[];
  /** LOCAL:PATH. */
  copyIn: string[];
  firstBoot: string[];
  generalize: boolean;
}

const bad = (message: string, reason: string, hint?: string) => new ImageError('imageCustomize', message, { details: { reason }, ...(hint ? { hint } : {}) });

const USER_NAME = /^[a-z_][a-z0-9_-]{0,31}$/;
const HOSTNAME = /^(?=.{1,63}$)[a-z0-9]([a-z0-9-]*[a-z0-9])?$/i;

/** The steps in the order they are applied, checked before anything is made; and how the catalog records each (no passwords). */
async function customizeSteps(options: CustomizeOptions): Promise<{ steps: CustomizeStep[]; recorded: string[] }> {
  const steps: CustomizeStep[] = [];
  const recorded: string[] = [];
  if (options.hostname !== undefined) {
    if (!HOSTNAME.test(options.hostname)) throw bad(`--hostname ${options.hostname}: not a host name (letters, digits and -, 63 at most)`, 'bad-hostname');
    steps.push({ kind: 'hostname', hostname: options.hostname });
    recorded.push(`hostname ${options.hostname}`);
  }
  const users: string[] = [];
  for (const given of options.users) {
    const colon = given.indexOf(':');
    const name = colon < 0 ? given : given.slice(0, colon);
    if (!USER_NAME.test(name)) throw bad(`--user ${name}: not a user name (lower-case letters, digits, _ and -)`, 'bad-user');
    users.push(name);
    steps.push({ kind: 'user', name, ...(colon < 0 ? {} : { password: given.slice(colon + 1) }) });
    recorded.push(`user ${name}${colon < 0 ? '' : ' with a password'}`);
  }
  for (const given of options.sshKeys) {
    const match = /^([a-z_][a-z0-9_-]{0,31}):(.+)$/.exec(given);
    const name = match ? match[1]! : users.length === 1 ? users[0]! : undefined;
    if (!name) throw bad(`--ssh-key ${given}: say whose key it is (--ssh-key NAME:FILE)`, 'bad-key');
    const file = match ? match[2]! : given;
    const key = await readFile(file, 'utf8').catch(() => undefined);
    if (key === undefined || !/^(ssh|ecdsa|sk)-[\w@.-]+ [A-Za-z0-9+/=]+/.test(key.trim()))
      throw bad(`--ssh-key ${file}: not a readable SSH public key`, 'bad-key');
    steps.push({ kind: 'key', name, key: `${key.trim()}\n` });
    recorded.push(`ssh key for ${name}: ${key.trim().split(/\s+/).slice(0, 2).join(' ').slice(0, 40)}…`);
  }
  let copied = 0;
  for (const given of options.copyIn) {
    const colon = given.lastIndexOf(':');
    const [local, path] = colon < 0 ? [given, ''] : [given.slice(0, colon), given.slice(colon + 1)];
    if (!path.startsWith('/') || path.split('/').includes('..')) throw bad(`--copy-in ${given}: say LOCAL:/absolute/path/in/the/image`, 'bad-copy');
    const content = await readFile(local).catch(() => undefined);
    if (!content) throw bad(`--copy-in ${given}: ${local} is not a readable file`, 'bad-copy');
    copied += content.length;
    if (copied > MAX_COPY_IN_BYTES)
      throw bad(`--copy-in ${given}: the files copied in come to more than ${MAX_COPY_IN_BYTES >> 20} MiB (use launcher files put)`, 'bad-copy');
    steps.push({ kind: 'copy', path, contentBase64: content.toString('base64'), from: local });
    recorded.push(`copy ${local} to ${path} (sha256 ${createHash('sha256').update(content).digest('hex').slice(0, 16)}…)`);
  }
  for (const command of options.firstBoot) {
    if (command.includes('\n') || command.trim() === '') throw bad('--first-boot: one command line, not empty', 'bad-first-boot');
    steps.push({ kind: 'firstboot', command });
    recorded.push(`first boot: ${command}`);
  }
  if (options.generalize) {
    steps.push({ kind: 'generalize' });
    recorded.push('generalize: machine-id emptied, SSH host keys removed (made again at first boot), logs emptied');
  }
  if (steps.length === 0) throw bad('nothing to customize: give --hostname, --user, --ssh-key, --copy-in, --first-boot or --generalize', 'no-steps');
  return { steps, recorded };
}

/** Where the root file system is: its partition (on LVM, its physical volume's) and its VG/LV. */
export interface RootLocation {
  partition: number;
  volume: string | null;
}

/** The root file system's location, from the image's facts (inspected first when it never was); the facts too (adapt finds /boot in them). */
export async function rootLocation(
  layout: StickLayout,
  address: ApplianceAddress,
  store: ImageStore,
  image: CatalogImage,
  events: ImportEvents,
): Promise<RootLocation & { facts: ImageFacts }> {
  const facts = await catalogFacts(
    layout,
    async () => address,
    store,
    image,
    (message) => events.step(`${message} (its root file system)`),
  );
  const root = facts.fileSystems.find((f) => f.mountpoint === '/');
  if (!root) throw bad(`${image.name}: inspect found no root file system in it to customize`, 'no-root');
  return { partition: root.partition, volume: root.volume, facts };
}

export type PreparedCustomize = Awaited<ReturnType<typeof customizeSteps>> & { name?: string };

/** Everything the person gave, checked before the appliance is started: a bad step costs no boot. */
export async function prepareCustomize(store: ImageStore, options: CustomizeOptions): Promise<PreparedCustomize> {
  if (options.name !== undefined && (!IMAGE_NAME_PATTERN.test(options.name) || store.catalog.nameTaken(options.name)))
    throw bad(`--name ${options.name}: ${IMAGE_NAME_PATTERN.test(options.name) ? 'taken by another image' : 'not an image name'}`, 'bad-name');
  return { ...(await customizeSteps(options)), ...(options.name === undefined ? {} : { name: options.name }) };
}

export async function customizeImage(
  layout: StickLayout,
  store: ImageStore,
  address: ApplianceAddress,
  image: CatalogImage,
  prepared: PreparedCustomize,
  events: ImportEvents,
): Promise<ImportedImage & { steps: string[]; parent: string }> {
  const { steps, recorded } = prepared;
  const root = await rootLocation(layout, address, store, image, events);
  const overlay = join(store.paths.incoming, `${process.pid}-${randomBytes(6).toString('hex')}-customize.qcow2`);
  try {
    // Relative backing, read-only to QEMU: the source image is never written.
    const made = await runQemuImg(layout.root, ['create', '-f', 'qcow2', '-F', 'qcow2', '-b', relative(store.paths.incoming, store.fileOf(image)), overlay]);
    if (made.exitCode !== 0) throw bad(`the overlay could not be made: ${lastWords(made)}`, 'failed');
    events.step(`customizing ${image.name} in the appliance: ${recorded.join('; ')}`);
    const result = await applianceRequest(layout, address, 'customize', {
      overlay,
      rootPartition: root.partition,
      ...(root.volume ? { rootVolume: root.volume } : {}),
      steps,
    });
    events.step(`${result.done.length} steps done in ${(result.ms / 1000).toFixed(1)} s; storing the new image`);
    const name = prepared.name ?? imageNameFor(`${image.name}-custom`, (n) => store.catalog.nameTaken(n));
    const stored = await importDisk(
      layout,
      store,
      { spec: overlay, format: 'qcow2', display: `customize of ${image.name} (${image.sha256.slice(0, 16)}…)`, sourceBytes: image.virtualBytes },
      name,
      events,
    );
    store.catalog.setLineage(stored.sha256, { parent: image.sha256, parentName: image.name, steps: recorded, madeAt: new Date().toISOString() });
    return { ...stored, steps: recorded, parent: image.name };
  } finally {
    await rm(overlay, { force: true });
  }
}
