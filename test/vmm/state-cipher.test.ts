import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { deriveStateKey, STATE_KEY_INFO } from '../../src/auth/state-key.ts';
import { SavedStateError } from '../../src/errors.ts';
import { OpenedState, readStateHead, StateSealer } from '../../src/vmm/state-cipher.ts';

const META = { format: 'test', guest: 'default', memoryMiB: 256 };

async function seal(key: Buffer, plain: Buffer, chunkBytes: number, pieces = 7): Promise<Buffer> {
  // Fed in uneven pieces, as a socket delivers them.
  const parts: Buffer[] = [];
  for (let at = 0, i = 0; at < plain.length; i++) {
    const size = Math.min(plain.length - at, 1 + ((i * 7919) % (pieces * 1000)));
    parts.push(plain.subarray(at, at + size));
    at += size;
  }
  return buffer(Readable.from(parts).pipe(new StateSealer(key, META, { chunkBytes })));
}

let dir: string;
async function asFile(bytes: Buffer): Promise<string> {
  const path = join(dir, `s-${randomBytes(4).toString('hex')}`);
  await writeFile(path, bytes);
  return path;
}

/** Header check, end check, then the full read: what a resume does, in order. */
async function openAll(key: Buffer, bytes: Buffer): Promise<{ plain: Buffer; header: Record<string, unknown> }> {
  const handle = await open(await asFile(bytes), 'r');
  try {
    const opened = new OpenedState<Record<string, unknown>>(key, await readStateHead(handle));
    await opened.checkEnd(handle, bytes.length);
    const plain = await buffer(Readable.from([bytes.subarray(opened.dataOffset)]).pipe(opened.reader()));
    return { plain, header: opened.header };
  } finally {
    await handle.close();
  }
}

/** Only the streaming reader (no end check first): what a damaged middle meets. */
async function streamOnly(key: Buffer, bytes: Buffer): Promise<Buffer> {
  const handle = await open(await asFile(bytes), 'r');
  try {
    const opened = new OpenedState(key, await readStateHead(handle));
    return await buffer(Readable.from([bytes.subarray(opened.dataOffset)]).pipe(opened.reader()));
  } finally {
    await handle.close();
  }
}

function reason(error: unknown): unknown {
  assert.ok(error instanceof SavedStateError, `expected a SavedStateError, got ${String(error)}`);
  return error.details['reason'];
}

async function refused(promise: Promise<unknown>, expected: string): Promise<void> {
  await assert.rejects(promise, (error) => reason(error) === expected);
}

describe('state key', () => {
  it('is HKDF-SHA256 of the disk key with its own info string, and differs from it', () => {
    const disk = randomBytes(32);
    const key = deriveStateKey(disk);
    assert.equal(key.length, 32);
    assert.deepEqual(key, deriveStateKey(Buffer.from(disk)));
    assert.notDeepEqual(key, disk);
    assert.notDeepEqual(key, deriveStateKey(randomBytes(32)));
    assert.equal(STATE_KEY_INFO, 'pocketvm vmstate v1');
  });
});

describe('saved-state cipher', () => {
  const key = deriveStateKey(randomBytes(32));
  const plain = randomBytes(300_000);

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pocketvm-cipher-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('round-trips, with the metadata readable and authenticated', async () => {
    const sealed = await seal(key, plain, 64 * 1024);
    assert.ok(!sealed.includes(plain.subarray(1000, 1032)), 'no plaintext in the file');
    const { plain: back, header } = await openAll(key, sealed);
    assert.deepEqual(back, plain);
    assert.equal(header['guest'], 'default');
    assert.equal((header['cipher'] as { chunkBytes: number }).chunkBytes, 64 * 1024);
  });

  it('handles an empty stream and an exact multiple of the chunk size (empty final chunk)', async () => {
    assert.deepEqual((await openAll(key, await seal(key, Buffer.alloc(0), 1024))).plain, Buffer.alloc(0));
    const exact = randomBytes(4096);
    assert.deepEqual((await openAll(key, await seal(key, exact, 1024))).plain, exact);
  });

  it('seals the same input differently each time (random salt and nonce prefix)', async () => {
    const a = await seal(key, plain, 64 * 1024);
    const b = await seal(key, plain, 64 * 1024);
    assert.notDeepEqual(a, b);
  });

  it('refuses another key', async () => {
    const sealed = await seal(key, plain, 64 * 1024);
    await refused(openAll(deriveStateKey(randomBytes(32)), sealed), 'key');
  });

  it('refuses a changed header byte (the metadata is authenticated)', async () => {
    const sealed = await seal(key, plain, 64 * 1024);
    const text = sealed.toString('latin1');
    const at = text.indexOf('"memoryMiB":256');
    assert.ok(at > 0);
    const tampered = Buffer.from(sealed);
    tampered.write('"memoryMiB":512', at, 'latin1');
    await refused(openAll(key, tampered), 'key');
  });

  it('refuses a flipped byte in a middle chunk, naming the chunk, and passes on nothing after it', async () => {
    const sealed = await seal(key, plain, 64 * 1024);
    const tampered = Buffer.from(sealed);
    const at = tampered.length - 200_000;
    tampered.writeUInt8(tampered.readUInt8(at) ^ 0x01, at);
    // The end check reads only the last chunk: the damage shows while streaming.
    const handle = await open(await asFile(tampered), 'r');
    const opened = new OpenedState(key, await readStateHead(handle));
    await handle.close();
    const delivered: Buffer[] = [];
    const reader = opened.reader();
    reader.on('data', (chunk: Buffer) => delivered.push(chunk));
    const failure = await new Promise<unknown>((resolve) => {
      reader.on('error', resolve);
      reader.on('end', () => resolve(undefined));
      reader.end(tampered.subarray(opened.dataOffset));
    });
    assert.equal(reason(failure), 'damaged');
    assert.match((failure as Error).message, /chunk \d+ does not verify/);
    const bad = (failure as SavedStateError).details['chunk'] as number;
    assert.deepEqual(Buffer.concat(delivered), plain.subarray(0, (bad - 1) * 64 * 1024), 'only the chunks before the damaged one');
  });

  it('refuses a file cut short: mid-chunk, at a chunk boundary, or right after the header', async () => {
    const sealed = await seal(key, plain, 64 * 1024);
    await refused(openAll(key, sealed.subarray(0, sealed.length - 10)), 'truncated');
    // Cut exactly after the first frame: every remaining frame is whole, none is final.
    const handle = await open(await asFile(sealed), 'r');
    const head = await readStateHead(handle);
    await handle.close();
    const firstFrameEnd = head.dataOffset + 5 + 64 * 1024 + 16;
    await refused(openAll(key, sealed.subarray(0, firstFrameEnd)), 'truncated');
    await refused(streamOnly(key, sealed.subarray(0, firstFrameEnd)), 'truncated');
    await refused(openAll(key, sealed.subarray(0, head.dataOffset)), 'truncated');
  });

  it('refuses a forged final flag, bytes after the final chunk, and swapped chunks', async () => {
    const sealed = await seal(key, plain, 64 * 1024);
    const handle = await open(await asFile(sealed), 'r');
    const head = await readStateHead(handle);
    await handle.close();
    const frame = 5 + 64 * 1024 + 16;
    const first = head.dataOffset;
    // Truncate after frame 1 and set its final flag: the tag no longer matches.
    const forged = Buffer.from(sealed.subarray(0, first + frame));
    forged[first] = 0x01;
    await refused(openAll(key, forged), 'damaged');
    await refused(openAll(key, Buffer.concat([sealed, Buffer.from('extra')])), 'damaged');
    await refused(streamOnly(key, Buffer.concat([sealed, Buffer.from('extra')])), 'damaged');
    const swapped = Buffer.from(sealed);
    sealed.copy(swapped, first, first + frame, first + 2 * frame);
    sealed.copy(swapped, first + frame, first, first + frame);
    await refused(streamOnly(key, swapped), 'damaged');
  });

  it('refuses what is not a state file, and a format it does not know', async () => {
    await refused(openAll(key, Buffer.from('hello world, not a state file at all')), 'format');
    const sealed = await seal(key, plain.subarray(0, 1000), 1024);
    const other = Buffer.from(sealed);
    other.writeUInt16BE(9, 8);
    await refused(openAll(key, other), 'format');
  });

  it('stops a stream that would outgrow the largest file the stick takes', async () => {
    const sealer = new StateSealer(key, META, { chunkBytes: 1024, maxFileBytes: 10_000 });
    await assert.rejects(buffer(Readable.from([randomBytes(50_000)]).pipe(sealer)), (error) => reason(error) === 'too-big');
  });

  it('reads a whole file by itself (what a resume streams), refusing the same damage', async () => {
    const whole = async (bytes: Buffer) => {
      const handle = await open(await asFile(bytes), 'r');
      try {
        return await buffer(new OpenedState(key, await readStateHead(handle)).plaintext(handle));
      } finally {
        await handle.close();
      }
    };
    const sealed = await seal(key, plain, 64 * 1024);
    assert.deepEqual(await whole(sealed), plain);
    assert.deepEqual(await whole(await seal(key, Buffer.alloc(0), 1024)), Buffer.alloc(0));
    const flipped = Buffer.from(sealed);
    flipped.writeUInt8(flipped.readUInt8(flipped.length - 100_000) ^ 0x01, flipped.length - 100_000);
    await refused(whole(flipped), 'damaged');
    await refused(whole(sealed.subarray(0, sealed.length - 1)), 'truncated');
    await refused(whole(Buffer.concat([sealed, Buffer.from('x')])), 'damaged');
  });

  it('seals and opens inline too (no worker thread)', async () => {
    const sealed = await buffer(Readable.from([plain]).pipe(new StateSealer(key, META, { chunkBytes: 50_000, worker: false })));
    const handle = await open(await asFile(sealed), 'r');
    const opened = new OpenedState(key, await readStateHead(handle));
    await handle.close();
    assert.deepEqual(await buffer(Readable.from([sealed.subarray(opened.dataOffset)]).pipe(opened.reader({ worker: false }))), plain);
  });

  it('keeps the file format stable on disk (magic and version)', async () => {
    const path = await asFile(await seal(key, plain.subarray(0, 10), 1024));
    const bytes = await readFile(path);
    assert.equal(bytes.subarray(0, 8).toString('latin1'), 'PVMSTATE');
    assert.equal(bytes.readUInt16BE(8), 1);
  });
});
