// Whether a saved state can be resumed on "this PC": every rule, without QEMU.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { deriveStateKey } from '../../src/auth/state-key.ts';
import { personalDiskPath } from '../../src/auth/users.ts';
import {
  describeUnresumable,
  examineSavedState,
  type ResumeHost,
  type ResumeVerdict,
  savedStatePaths,
  setStateAside,
  VMSTATE_FORMAT,
  type VmStateMeta,
} from '../../src/session/saved-state.ts';
import { stickLayout } from '../../src/stick/layout.ts';
import { buildQemuArgs } from '../../src/vmm/qemu-args.ts';
import { fdChannels } from '../../src/vmm/qemu-process.ts';
import { StateSealer } from '../../src/vmm/state-cipher.ts';

const USER = { name: 'alice', id: 'id-alice' };
const META: VmStateMeta = {
  format: VMSTATE_FORMAT,
  guest: 'default',
  user: 'alice',
  userId: 'id-alice',
  createdAt: '2026-01-02T03:04:05.678Z',
  host: 'saved-on-host',
  qemu: '7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)',
  machineType: 'pc-q35-7.2',
  cpuModel: 'Nehalem,enforce',
  accelerator: 'tcg',
  memoryMiB: 512,
  cpus: 1,
};
const HOST: ResumeHost = { qemuVersion: META.qemu, accelerators: ['tcg'], memory: { totalMiB: 16384, availableMiB: 8192 }, fingerprint: 'this-host' };

describe('saved state: can it be resumed here', () => {
  let root: string;
  const key = deriveStateKey(randomBytes(32));
  const layout = () => stickLayout(root);

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'pocketvm-saved-state-'));
    const disk = personalDiskPath(layout(), USER.name, 'default');
    await mkdir(dirname(disk), { recursive: true });
    await writeFile(disk, 'qcow2');
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  async function save(meta: Partial<VmStateMeta> = {}, sealKey = key): Promise<string> {
    const { file, dir } = savedStatePaths(layout(), USER.name, 'default');
    await mkdir(dir, { recursive: true });
    await writeFile(file, await buffer(Readable.from([randomBytes(100_000)]).pipe(new StateSealer(sealKey, { ...META, ...meta }, { chunkBytes: 16_384 }))));
    return file;
  }

  const examine = (host: Partial<ResumeHost> = {}) =>
    examineSavedState({ layout: layout(), guest: 'default', user: USER, stateKey: key, host: async () => ({ ...HOST, ...host }) });

  function refusal(verdict: ResumeVerdict | undefined): Extract<ResumeVerdict, { resumable: false }> {
    assert.ok(verdict && !verdict.resumable, `expected a refusal, got ${JSON.stringify(verdict)}`);
    return verdict;
  }

  it('is nothing to decide when there is no state', async () => {
    assert.equal(await examine(), undefined);
  });

  it('resumes a state from another PC with the same QEMU, accelerator and room', async () => {
    await save();
    const verdict = await examine();
    assert.ok(verdict?.resumable);
    assert.equal(verdict.sameHost, false);
    assert.equal(verdict.meta.memoryMiB, 512);
    const same = await examine({ fingerprint: 'saved-on-host' });
    assert.ok(same?.resumable && same.sameHost);
  });

  it('refuses another QEMU version, a missing accelerator, too little memory, a missing disk', async () => {
    await save({ accelerator: 'kvm' });
    assert.equal(refusal(await examine()).reason, 'accelerator');
    assert.ok((await examine({ accelerators: ['kvm', 'tcg'] }))?.resumable);
    await save();
    const qemu = refusal(await examine({ qemuVersion: '8.2.2' }));
    assert.equal(qemu.reason, 'qemu');
    assert.match(describeUnresumable(qemu), /cannot be resumed on this PC: it was saved by QEMU 7\.2\.22 .*; this PC runs QEMU 8\.2\.2/);
    assert.match(describeUnresumable(qemu), /suspended 2026-01-02 03:04:05 UTC/);
    // Half of what is available, and the total less 1 GiB, as sizing would allow.
    assert.equal(refusal(await examine({ memory: { totalMiB: 16384, availableMiB: 1000 } })).reason, 'memory');
    assert.equal(refusal(await examine({ memory: { totalMiB: 1400, availableMiB: 1400 } })).reason, 'memory');
    await rm(personalDiskPath(layout(), USER.name, 'default'));
    assert.equal(refusal(await examine()).reason, 'disk-missing');
  });

  it("refuses another user's or guest's state, another key, and a damaged file without asking the host", async () => {
    let asked = false;
    const strict = () => examineSavedState({ layout: layout(), guest: 'default', user: USER, stateKey: key, host: async () => ((asked = true), HOST) });
    await save({ user: 'bob' });
    assert.equal(refusal(await strict()).reason, 'mismatch');
    await save({}, deriveStateKey(randomBytes(32)));
    const other = refusal(await strict());
    assert.equal(other.reason, 'key');
    assert.match(other.message, /^it does not open with this key/);
    const file = await save();
    await writeFile(file, (await readFile(file)).subarray(0, 50_000));
    assert.equal(refusal(await strict()).reason, 'truncated');
    assert.equal(asked, false, 'no QEMU probe for a state that fails on its own');
  });

  it('sets a state aside under a new name, never to be resumed', async () => {
    const file = await save();
    const aside = await setStateAside(file, new Date('2026-05-06T07:08:09.010Z'));
    assert.equal(existsSync(file), false);
    assert.equal(aside, `${file}.set-aside-2026-05-06T07-08-09-010Z`);
    assert.deepEqual(await readdir(dirname(file)), ['default.vmstate.set-aside-2026-05-06T07-08-09-010Z']);
    assert.equal(await examine(), undefined);
  });

  it('starts QEMU waiting for a state when the spec says incoming', () => {
    const spec = {
      name: 'x',
      hostOs: 'linux' as const,
      accelerator: 'tcg' as const,
      memoryMiB: 256,
      cpus: 1,
      kernel: 'k',
      initrd: 'i',
      cmdline: 'c',
      disks: [],
      network: 'none' as const,
      channels: fdChannels(['vmstate-in']),
      streams: ['vmstate-in'],
      startPaused: true,
    };
    assert.equal(buildQemuArgs(spec).join(' ').includes('-incoming'), false);
    assert.match(buildQemuArgs({ ...spec, incoming: true }).join(' '), /-S -incoming defer$/);
  });
});
