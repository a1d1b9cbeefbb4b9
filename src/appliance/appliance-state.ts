// The helper appliance's saved state: its memory and devices right after its
// first boot, before any source is attached, so that later starts load it
// (`-incoming defer`) instead of booting (docs/files.md, "Starting from a
// saved state").
//
// - Keyed by what it depends on: the appliance payload (its SHA256SUMS and
//   manifest: a rebuilt kernel or initramfs is another key), QEMU's version
//   and the machine's arguments (accelerator, CPU model, memory, devices),
//   with the payload's paths left out so a stick mounted elsewhere keeps it.
//   A state under another key is stale: it is never loaded, and the next
//   fresh save removes it.
// - Saved with the session's migration code (src/vmm/migration.ts: QEMU
//   connects to a launcher-only socket in a fresh 0700 folder) into
//   `.pocketvm/appliance/<key>.vmstate`, written atomically (temporary file,
//   fsync, rename, folder fsync), then `<key>.json` beside it with the
//   stream's SHA-256 and length. Not sealed: it holds the public payload and
//   nothing of a person's (no source has been attached, no passphrase
//   asked); what it does hold is the guest's random-number state, which is
//   why every resume reseeds it (reseedGuest).
// - Loaded by streaming the file into QEMU while hashing it; the guest stays
//   paused (`cont` comes after) unless the hash and length match, since
//   QEMU's stream carries no checksum of its own and a flipped byte in a RAM
//   page would otherwise run.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { GuestPayload } from '../payload/guest-payload.ts';
import { CHECKSUM_FILE } from '../payload/guest-payload.ts';
import { replaceFile, replaceFileWith } from '../primitives/atomic-replace.ts';
import type { StickLayout } from '../stick/layout.ts';
import type { MachineSpec } from '../vmm/machine-spec.ts';
import { cancelMigration, listenForMigration, migrateIn, migrateOut } from '../vmm/migration.ts';
import { buildQemuArgs } from '../vmm/qemu-args.ts';
import type { QmpClient } from '../vmm/qmp-client.ts';
import { runInAppliance } from './guest-command.ts';
import type { ExecService } from '../session/exec-channel.ts';

/** Bumped when what a state file holds, or how it is keyed, changes. */
const STATE_FORMAT = 1;
const SAVE_TIMEOUT_MS = 5 * 60_000;
const LOAD_TIMEOUT_MS = 5 * 60_000;

export interface ApplianceStateMeta {
  format: number;
  key: string;
  /** SHA-256 and length of the migration stream in the .vmstate file. */
  sha256: string;
  bytes: number;
  savedAt: string;
  qemu: string;
  accelerator: string;
  /** How long the boot it was saved after took (what each resume saves). */
  bootMs: number;
  /**
   * The saved boot's /proc/sys/kernel/random/boot_id: an appliance loaded
   * from this state reports the same one, a freshly booted one another.
   */
  bootId: string;
}

export function applianceStateDir(layout: StickLayout): string {
  return join(layout.root, '.pocketvm', 'appliance');
}

export function applianceStatePaths(layout: StickLayout, key: string): { dir: string; state: string; meta: string } {
  const dir = applianceStateDir(layout);
  return { dir, state: join(dir, `${key}.vmstate`), meta: join(dir, `${key}.json`) };
}

/**
 * The key of a state for this payload, this QEMU and this machine. `spec`
 * is the machine as booted (no `-incoming`); the payload's paths are
 * replaced by its checksums, which SHA256SUMS holds and openGuestPayload
 * verified.
 */
export async function applianceStateKey(payload: GuestPayload, qemuVersion: string, spec: MachineSpec): Promise<string> {
  const sums = await readFile(join(payload.dir, CHECKSUM_FILE), 'utf8');
  const args = buildQemuArgs({ ...spec, kernel: '<kernel>', initrd: '<initrd>' });
  const hash = createHash('sha256');
  hash.update(JSON.stringify({ format: STATE_FORMAT, sums, manifest: payload.manifest, qemu: qemuVersion, args }));
  return hash.digest('hex').slice(0, 32);
}

/** Why a state cannot be used, in a few words; undefined when there is none at all. */
export type StateCheck = { usable: true; meta: ApplianceStateMeta } | { usable: false; why: string } | undefined;

/** Looks at the state for `key` without loading it: there, complete, and what its record says. */
export async function checkApplianceState(layout: StickLayout, key: string): Promise<StateCheck> {
  const paths = applianceStatePaths(layout, key);
  const [metaText, info] = await Promise.all([readFile(paths.meta, 'utf8').catch(() => undefined), stat(paths.state).catch(() => undefined)]);
  if (metaText === undefined && info === undefined) {
    // Another key's state is stale (the payload, QEMU or the machine changed).
    const others = (await readdir(paths.dir).catch(() => [])).filter((name) => name.endsWith('.vmstate'));
    return others.length > 0 ? { usable: false, why: 'it was saved for another appliance payload, QEMU or machine' } : undefined;
  }
  if (metaText === undefined || info === undefined) return { usable: false, why: 'it is incomplete' };
  let meta: ApplianceStateMeta;
  try {
    meta = JSON.parse(metaText) as ApplianceStateMeta;
  } catch {
    return { usable: false, why: 'its record is damaged' };
  }
  if (meta.format !== STATE_FORMAT || meta.key !== key) return { usable: false, why: 'its record is for another format' };
  if (meta.bytes !== info.size) return { usable: false, why: `it is ${info.size} bytes where ${meta.bytes} were saved` };
  return { usable: true, meta };
}

/** Hashes and counts what flows through. */
class Digest extends Transform {
  readonly hash = createHash('sha256');
  bytes = 0;
  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null, data?: Buffer) => void): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    callback(null, chunk);
  }
}

/**
 * Saves the freshly booted appliance's state under `key` and lets it run on.
 * QEMU is stopped for the save; whatever happens, it is continued after
 * (`cont` from post-migrate re-activates it), so a failed save costs only
 * the time it took. States under other keys are removed once this one is
 * durable.
 */
export async function saveApplianceState(args: {
  layout: StickLayout;
  key: string;
  qmp: QmpClient;
  execs: ExecService;
  privateDir: string;
  meta: Omit<ApplianceStateMeta, 'format' | 'key' | 'sha256' | 'bytes' | 'savedAt' | 'bootId'>;
}): Promise<ApplianceStateMeta> {
  const { qmp, layout, key } = args;
  const paths = applianceStatePaths(layout, key);
  let socket: Awaited<ReturnType<typeof listenForMigration>> | undefined;
  try {
    await mkdir(paths.dir, { recursive: true });
    // A half-replaced pair must not pass for a whole one while this is written.
    await rm(paths.meta, { force: true });
    // Read before the save: the kernel makes the boot id on its first read, which is then part of the state.
    const bootId = (await runInAppliance(args.execs, ['/bin/cat', '/proc/sys/kernel/random/boot_id'])).stdout.trim();
    // Clean page cache out of the state (zeroed once freed: init_on_free, appliance-machine.ts).
    await runInAppliance(args.execs, ['/bin/sh', '-c', 'sync; echo 3 > /proc/sys/vm/drop_caches']);
    await qmp.stop();
    socket = await listenForMigration(args.privateDir);
    const digest = new Digest();
    const migration = socket;
    await replaceFileWith(paths.state, async (temp) => {
      const written = migration.connection.then((connection) => pipeline(connection, digest, createWriteStream(temp)));
      written.catch(() => {});
      try {
        await migrateOut(qmp, migration.uri, { timeoutMs: SAVE_TIMEOUT_MS });
      } catch (error) {
        await cancelMigration(qmp);
        throw error;
      }
      await written;
    });
    const meta: ApplianceStateMeta = {
      format: STATE_FORMAT,
      key,
      sha256: digest.hash.digest('hex'),
      bytes: digest.bytes,
      savedAt: new Date().toISOString(),
      bootId,
      ...args.meta,
    };
    await replaceFile(paths.meta, `${JSON.stringify(meta, null, 2)}\n`);
    for (const name of await readdir(paths.dir).catch(() => []))
      if (!name.startsWith(`${key}.`)) await rm(join(paths.dir, name), { force: true }).catch(() => {});
    return meta;
  } finally {
    if (socket) await socket.close();
    else await rm(args.privateDir, { recursive: true, force: true }).catch(() => {});
    await qmp.cont().catch(() => {});
  }
}

/**
 * In the boot's attach step of a QEMU started with `-incoming defer`: the
 * state into QEMU through channel descriptor `fd`, its hash checked before
 * the caller's `cont`. Throws (and QEMU must then be killed) when it does not
 * match or QEMU refuses it.
 */
export async function loadApplianceState(args: {
  layout: StickLayout;
  meta: ApplianceStateMeta;
  qmp: QmpClient;
  fd: number;
  channel: Writable;
}): Promise<{ ms: number }> {
  const paths = applianceStatePaths(args.layout, args.meta.key);
  const digest = new Digest();
  const source = createReadStream(paths.state).pipe(digest);
  const loaded = await migrateIn(args.qmp, args.fd, source, args.channel, { timeoutMs: LOAD_TIMEOUT_MS });
  const sha256 = digest.hash.digest('hex');
  if (digest.bytes !== args.meta.bytes || sha256 !== args.meta.sha256)
    throw new Error(`its content does not match its record (sha256 ${sha256.slice(0, 12)}…, ${args.meta.bytes} bytes expected)`);
  return loaded;
}

/**
 * After a resume, the guest's random-number generator: the kernel's CRNG was
 * reseeded already when QEMU's vmgenid device (MachineSpec.vmgenid) handed it
 * a new generation id during the load (Linux mixes the id in and reseeds at
 * once); 64 bytes of the host's randomness are mixed into its input pool as
 * well (credited to nothing, they reach the CRNG at its next reseed). Every
 * resume starts from the same saved RNG state, so without this, key material
 * the appliance makes (a LUKS volume's) could repeat from one resume to the next.
 */
export async function reseedGuest(execs: ExecService): Promise<void> {
  const seed = await runInAppliance(execs, ['/bin/sh', '-c', 'cat > /dev/urandom'], randomBytes(64));
  if (seed.exitCode !== 0) throw new Error(`mixing the host's randomness in failed: ${seed.stderr.trim()}`);
}

/** What a saved state is, for the log. */
export function describeState(meta: ApplianceStateMeta): string {
  return `saved ${meta.savedAt} (${Math.round(meta.bytes / 1048576)} MiB, ${meta.accelerator}, QEMU ${meta.qemu})`;
}
