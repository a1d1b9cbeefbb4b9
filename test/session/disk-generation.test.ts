// The personal disk's generation (src/session/disk-generation.ts) and the
// rule that a saved state resumes only over the generation it was saved in.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { deriveStateKey } from '../../src/auth/state-key.ts';
import { personalDiskPath } from '../../src/auth/users.ts';
import { bumpDiskGeneration, diskGenerationPath, readDiskGeneration } from '../../src/session/disk-generation.ts';
import { examineSavedState, savedStatePaths, staleness, VMSTATE_FORMAT, type VmStateMeta } from '../../src/session/saved-state.ts';
import { stickLayout } from '../../src/stick/layout.ts';
import { StateSealer } from '../../src/vmm/state-cipher.ts';

const USER = { name: 'alice', id: 'id-alice' };

describe('disk generation: no saved state resumes over a newer disk', () => {
  let root: string;
  const key = deriveStateKey(randomBytes(32));
  const scope = () => ({ layout: stickLayout(root), user: USER, guest: 'default', stateKey: key });

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'pocketvm-generation-'));
    const disk = personalDiskPath(stickLayout(root), USER.name, 'default');
    await mkdir(dirname(disk), { recursive: true });
    await writeFile(disk, 'qcow2');
  });
  afterEach(() => rm(root, { recursive: true, force: true }));

  it('each run gets a new generation, recorded next to the disk and read back under the key', async () => {
    assert.equal(await readDiskGeneration(scope()), undefined);
    const first = await bumpDiskGeneration(scope());
    assert.equal(first.n, 1);
    assert.deepEqual(await readDiskGeneration(scope()), first);
    const second = await bumpDiskGeneration(scope());
    assert.equal(second.n, 2);
    assert.notEqual(second.id, first.id);
    assert.deepEqual(await readDiskGeneration(scope()), second);
  });

  it("a record edited, made up, or read under another user's key does not verify", async () => {
    await bumpDiskGeneration(scope());
    const path = diskGenerationPath(stickLayout(root), USER.name, 'default');
    const record = JSON.parse(await readFile(path, 'utf8')) as { n: number; id: string; mac: string };
    await writeFile(path, JSON.stringify({ ...record, n: record.n + 5 }));
    assert.equal(await readDiskGeneration(scope()), 'forged');
    await writeFile(path, JSON.stringify({ ...record, id: randomBytes(16).toString('hex') }));
    assert.equal(await readDiskGeneration(scope()), 'forged');
    await writeFile(path, 'not json');
    assert.equal(await readDiskGeneration(scope()), 'forged');
    await writeFile(path, JSON.stringify(record));
    assert.equal(await readDiskGeneration({ ...scope(), stateKey: deriveStateKey(randomBytes(32)) }), 'forged');
    assert.equal(await readDiskGeneration({ ...scope(), guest: 'other' }), undefined);
    assert.deepEqual(await readDiskGeneration(scope()), { n: record.n, id: record.id });
  });

  it('staleness: only the very generation the state was saved in', () => {
    const g1 = { n: 1, id: 'a'.repeat(32) };
    const g2 = { n: 2, id: 'b'.repeat(32) };
    assert.equal(staleness(g1, g1), undefined);
    assert.match(staleness(g1, g2)!, /run 1 .*written since \(run 2\)/);
    assert.match(staleness(g1, { n: 1, id: 'c'.repeat(32) })!, /written since/, 'the same count from another run');
    assert.match(staleness(g1, undefined)!, /missing/);
    assert.match(staleness(g1, 'forged')!, /does not verify/);
    assert.equal(staleness(undefined, undefined), undefined, 'a state and a disk from before generations');
    assert.match(staleness(undefined, g1)!, /older than the personal disk/);
  });

  it('a state set aside and put back after the disk was written is refused as stale (exit 17 reason)', async () => {
    const meta: VmStateMeta = {
      format: VMSTATE_FORMAT,
      guest: 'default',
      user: USER.name,
      userId: USER.id,
      createdAt: '2026-01-02T03:04:05.678Z',
      host: null,
      qemu: '7.2.22',
      machineType: 'pc-q35-7.2',
      cpuModel: 'Nehalem,enforce',
      accelerator: 'tcg',
      memoryMiB: 512,
      cpus: 1,
    };
    const examine = () =>
      examineSavedState({
        layout: stickLayout(root),
        guest: 'default',
        user: USER,
        stateKey: key,
        host: async () => ({ qemuVersion: '7.2.22', accelerators: ['tcg'], memory: { totalMiB: 16384, availableMiB: 8192 }, fingerprint: null }),
      });
    const { file, dir } = savedStatePaths(stickLayout(root), USER.name, 'default');
    await mkdir(dir, { recursive: true });
    const seal = async (diskGeneration: VmStateMeta['diskGeneration']) =>
      writeFile(
        file,
        await buffer(
          Readable.from([randomBytes(10_000)]).pipe(new StateSealer(key, { ...meta, ...(diskGeneration ? { diskGeneration } : {}) }, { chunkBytes: 4096 })),
        ),
      );
    const run1 = await bumpDiskGeneration(scope());
    await seal(run1);
    assert.equal((await examine())?.resumable, true, 'saved in the current run: resumable');
    const oldState = await readFile(file);
    // The state is set aside, the guest boots afresh and writes its disk.
    await bumpDiskGeneration(scope());
    await writeFile(file, oldState);
    const verdict = await examine();
    assert.ok(verdict && !verdict.resumable);
    assert.equal(verdict.reason, 'stale');
    assert.match(verdict.message, /written since/);
    // A state from before generations, over a disk that has them: stale too.
    await seal(undefined);
    const legacy = await examine();
    assert.ok(legacy && !legacy.resumable);
    assert.equal(legacy.reason, 'stale');
  });
});
