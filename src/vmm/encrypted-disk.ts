// A qcow2 disk with QEMU's native LUKS encryption, created and attached over
// QMP while the vCPUs are stopped. The key travels only as a QMP `secret`
// object on the private QMP channel (inline data, never a file, an argument
// or an environment variable), is used by blockdev-create/blockdev-add, and
// the object is deleted once the disk is open: from then on the key exists
// only inside QEMU's block layer.
import { rename, rm } from 'node:fs/promises';
import { AuthError, GuestFailedError } from '../errors.ts';
import { type QmpClient, QmpCommandError } from './qmp-client.ts';
import { hexBytes } from './secret-bytes.ts';

export interface EncryptedDiskOptions {
  /** The qcow2 file (created when absent). */
  path: string;
  key: Buffer;
  /** Node and device names; also the prefix of the secret and job ids. */
  id: string;
  /** virtio-blk serial: how the guest finds the disk (the serial file under /sys/block/vdX). */
  serial: string;
  /** Virtual size when created (the file starts small and grows). */
  sizeBytes: number;
  /** The PCIe port to plug the disk into (q35's root bus takes no device_add). */
  bus: string;
  /** false: a plain qcow2 attached the same way (the benchmark's baseline). */
  encrypted?: boolean;
  jobTimeoutMs?: number;
  /**
   * Leave the key's secret object in QEMU once the disk is open. QEMU re-opens
   * the image with it whenever the disk is re-activated after a migration: on
   * the resuming side as the saved state finishes loading, on the saving side
   * if a suspend is given up after QEMU handed the disk over. Without it the
   * disk is lost to the guest then. (QEMU holds the disk's master key anyway;
   * QMP, the only way to the object, is the launcher's alone.)
   */
  keepSecret?: boolean;
  /**
   * A copy-on-write overlay: reads of clusters it never wrote come from this
   * block node (already open, read-only). `fileName` is what the qcow2
   * header records as its backing file (informative only: the node is given
   * at every open, never looked up by that name).
   */
  backing?: { node: string; fileName: string };
}

export interface EncryptedDiskResult {
  created: boolean;
  /** Milliseconds spent creating the image (0 when it existed). */
  createMs: number;
  attachMs: number;
}

// The key is 256 random bits, not a passphrase: LUKS's PBKDF adds nothing but
// time on every open (a brute force of the key itself is 2^256 guesses, with
// or without stretching), so a low iteration count is sound and the iteration
// time is kept minimal.
const LUKS_ITER_TIME_MS = 10;

// QEMU 7.2 has no way to give LUKS an iteration count: it always times PBKDF2
// first, starting with 32,768 iterations measured against the thread's *user*
// CPU time. Hosts that account CPU time by ticks (250 Hz here) often see 0 ms
// for that first round with SHA-256 (hardware SHA makes it ~1 ms), and
// blockdev-create fails with "Unable to get accurate CPU usage" (measured
// here: 1 new disk in 10 to 20 under load; retrying only lowers the odds).
// SHA-512 has no such instructions: the first round takes tens of
// milliseconds, several ticks, and the measurement does not read 0. The hash
// only keys the PBKDF and the anti-forensic splitter; the data cipher is
// QEMU's default (aes-256-xts), so this costs nothing in strength.
const LUKS_HASH = 'sha512';

async function runJob(qmp: QmpClient, jobId: string, options: Record<string, unknown>, timeoutMs: number): Promise<void> {
  const concluded = qmp.watch('JOB_STATUS_CHANGE', { predicate: (event) => event.data['id'] === jobId && event.data['status'] === 'concluded' });
  try {
    await qmp.execute('blockdev-create', { 'job-id': jobId, options });
    await concluded.next({ timeoutMs });
  } finally {
    concluded.close();
  }
  const jobs = await qmp.execute<Array<{ id: string; error?: string }>>('query-jobs');
  const job = jobs.find((j) => j.id === jobId);
  await qmp.execute('job-dismiss', { id: jobId });
  if (job?.error) throw new GuestFailedError(`QEMU could not create the disk: ${job.error}`);
}

async function createImageAt(qmp: QmpClient, options: EncryptedDiskOptions, file: string, secretId: string | undefined): Promise<void> {
  const timeoutMs = options.jobTimeoutMs ?? 60_000;
  const fileNode = `${options.id}-create-file`;
  await runJob(qmp, `${options.id}-create-file`, { driver: 'file', filename: file, size: 0 }, timeoutMs);
  await qmp.execute('blockdev-add', { driver: 'file', 'node-name': fileNode, filename: file });
  try {
    await runJob(
      qmp,
      `${options.id}-create-qcow2`,
      {
        driver: 'qcow2',
        file: fileNode,
        size: options.sizeBytes,
        ...(options.backing ? { 'backing-file': options.backing.fileName, 'backing-fmt': 'raw' } : {}),
        ...(secretId ? { encrypt: { format: 'luks', 'key-secret': secretId, 'iter-time': LUKS_ITER_TIME_MS, 'hash-alg': LUKS_HASH } } : {}),
      },
      timeoutMs,
    );
  } finally {
    await qmp.execute('blockdev-del', { 'node-name': fileNode });
  }
}

/**
 * Made under a temporary name and renamed into place only when complete: a
 * failed or interrupted creation never leaves a file that later launches would
 * take for the user's disk.
 */
export async function createImage(qmp: QmpClient, options: EncryptedDiskOptions, secretId: string | undefined): Promise<void> {
  const partial = `${options.path}.partial`;
  await rm(partial, { force: true });
  try {
    await createImageAt(qmp, options, partial, secretId);
    await rename(partial, options.path);
  } catch (error) {
    await rm(partial, { force: true });
    throw error;
  }
}

/**
 * The virtio-blk device of a personal disk (device_add's arguments).
 *
 * - write-cache=on: the guest sees a volatile cache and sends its flushes
 *   (which reach the stick as fdatasync, see blockdev-add below).
 * - werror=stop, rerror=stop: a write or read the stick fails (full, or an
 *   I/O error) pauses the guest with the request kept, instead of handing
 *   the guest an error that its file system would turn into a read-only
 *   remount or a lost write. QEMU's default pauses on ENOSPC only and passes
 *   other write errors and every read error to the guest. The pause is
 *   announced as BLOCK_IO_ERROR, which src/session/stick-full.ts watches.
 */
export function personalDiskDevice(options: Pick<EncryptedDiskOptions, 'id' | 'serial' | 'bus'>): Record<string, string> {
  return {
    driver: 'virtio-blk-pci',
    drive: options.id,
    id: `${options.id}-dev`,
    serial: options.serial,
    bus: options.bus,
    'write-cache': 'on',
    werror: 'stop',
    rerror: 'stop',
  };
}

/** Creates the disk if it does not exist, then opens it and plugs it in as virtio-blk. */
export async function attachEncryptedDisk(qmp: QmpClient, options: EncryptedDiskOptions, exists: (path: string) => boolean): Promise<EncryptedDiskResult> {
  const encrypted = options.encrypted ?? true;
  const secretId = encrypted ? `${options.id}-key` : undefined;
  // QEMU's LUKS driver takes its key as a UTF-8 passphrase: the 256-bit key
  // goes in as its hex spelling (all of its entropy, none of its bytes lost).
  // (As bytes that are zeroed once sent: no JavaScript string of the key, src/vmm/secret-bytes.ts.)
  if (secretId) {
    const hex = hexBytes(options.key);
    try {
      await qmp.execute('object-add', { 'qom-type': 'secret', id: secretId, format: 'raw' }, { secret: { field: 'data', bytes: hex } });
    } finally {
      hex.fill(0);
    }
  }
  let attached = false;
  try {
    let created = false;
    let createMs = 0;
    if (!exists(options.path)) {
      const started = performance.now();
      await createImage(qmp, options, secretId);
      createMs = performance.now() - started;
      created = true;
    }
    const started = performance.now();
    try {
      await qmp.execute('blockdev-add', {
        driver: 'qcow2',
        'node-name': options.id,
        // Writeback through the host's page cache, with every guest flush
        // passed down as an fdatasync of the file: what the guest fsync'd is on
        // the stick, so a stick pulled out mid-write leaves a crash-consistent
        // disk (src/session/surprise-removal.ts). The file node inherits this.
        cache: { direct: false, 'no-flush': false },
        file: { driver: 'file', filename: options.path },
        ...(options.backing ? { backing: options.backing.node } : {}),
        ...(secretId ? { encrypt: { format: 'luks', 'key-secret': secretId } } : {}),
      });
    } catch (error) {
      if (error instanceof QmpCommandError && /password|keyslot|key.*(slot|invalid)/i.test(error.desc)) {
        throw new AuthError(`the disk key does not match ${options.path}`, {
          hint: 'this personal disk was made with another key (another user, or a user removed and created again); it cannot be opened with this one',
          details: { reason: 'disk-key-mismatch', disk: options.path, qemu: error.desc },
        });
      }
      throw error;
    }
    await qmp.execute('device_add', personalDiskDevice(options));
    attached = true;
    return { created, createMs, attachMs: performance.now() - started };
  } finally {
    if (secretId && !(attached && options.keepSecret)) await qmp.execute('object-del', { id: secretId }).catch(() => {});
  }
}
