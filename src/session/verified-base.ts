// An image guest's base served to QEMU by the launcher, each block checked
// against the base's block list before QEMU gets it (docs/images.md, "How the
// base is checked"). The list was checked against the manifest's root at
// launch (src/payload/base-blocks.ts) and is held in memory, and every block
// is read from the stick and checked in one step (a verified copy is what is
// served and cached), so a base changed on the stick before or during the
// session is never seen by the guest: the read fails, the launcher ends the
// session and reports the base corrupt (exit 18).
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SystemImageError } from '../errors.ts';
import { type BlockHashes, blockMatches } from '../payload/base-blocks.ts';
import { serveReadOnlyNbd } from '../vmm/nbd-read-only-server.ts';

/** Verified blocks kept in memory (16 MiB at 64 KiB): a guest's small reads of one block check it once. */
const CACHED_BLOCKS = 256;

export interface VerifiedBase {
  /** The UNIX socket QEMU's NBD client connects to (in a 0700 folder of the launcher's). */
  socket: string;
  close(): Promise<void>;
}

export function corruptBlockError(path: string, index: number, blockBytes: number): SystemImageError {
  return new SystemImageError(`the base image ${path} is corrupt: block ${index} (at byte ${index * blockBytes}) is not the one its manifest names`, {
    hint: 'the guest was stopped before it read it; copy the guest onto the stick again (`launcher init-stick DIR --guest NAME`)',
    details: { reason: 'corrupt', file: path, block: index },
  });
}

/**
 * `dir` is the session's private host folder (src/session/launch/private-host-dir.ts),
 * removed by its owner; without one (tests, the bench) a folder of its own is made and removed at close.
 */
export async function serveVerifiedBase(path: string, blocks: BlockHashes, onCorrupt: (error: SystemImageError) => void, dir?: string): Promise<VerifiedBase> {
  const ownDir = dir ? undefined : await mkdtemp(join(process.env['XDG_RUNTIME_DIR'] || tmpdir(), 'pocketvm-base-'));
  const folder = dir ?? ownDir!;
  const handle = await open(path, 'r');
  const cache = new Map<number, Buffer>();
  let failed: SystemImageError | undefined;

  async function block(index: number): Promise<Buffer> {
    const cached = cache.get(index);
    if (cached) {
      cache.delete(index);
      cache.set(index, cached);
      return cached;
    }
    const length = Math.min(blocks.blockBytes, blocks.bytes - index * blocks.blockBytes);
    const data = Buffer.alloc(length);
    const { bytesRead } = await handle.read(data, 0, length, index * blocks.blockBytes);
    if (bytesRead !== length || !blockMatches(blocks, index, data)) {
      if (!failed) {
        failed = corruptBlockError(path, index, blocks.blockBytes);
        onCorrupt(failed);
      }
      throw failed;
    }
    cache.set(index, data);
    if (cache.size > CACHED_BLOCKS) cache.delete(cache.keys().next().value!);
    return data;
  }

  const server = await serveReadOnlyNbd(join(folder, 'base.sock'), {
    bytes: blocks.bytes,
    preferredBlock: blocks.blockBytes,
    async read(offset, length) {
      // After one bad block nothing more is served: the session is ending.
      if (failed) throw failed;
      const first = Math.floor(offset / blocks.blockBytes);
      const last = Math.floor((offset + length - 1) / blocks.blockBytes);
      if (first === last) {
        const start = offset - first * blocks.blockBytes;
        return (await block(first)).subarray(start, start + length);
      }
      const out = Buffer.alloc(length);
      for (let index = first; index <= last; index++) {
        const data = await block(index);
        const blockStart = index * blocks.blockBytes;
        const from = Math.max(offset, blockStart);
        const to = Math.min(offset + length, blockStart + data.length);
        data.copy(out, from - offset, from - blockStart, to - blockStart);
      }
      return out;
    },
  });
  return {
    socket: join(folder, 'base.sock'),
    close: async () => {
      await server.close();
      await handle.close().catch(() => {});
      await rm(join(folder, 'base.sock'), { force: true });
      if (ownDir) await rm(ownDir, { recursive: true, force: true });
    },
  };
}
