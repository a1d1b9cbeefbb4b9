// Saving a guest's state (src/session/suspend.ts) against a fake session
// handle that records every call: a guest too big for a FAT stick is refused
// before anything is touched, and a save that fails once the guest is stopped
// undoes itself: the migration cancelled, no file left, the guest continued,
// its placed reads resumed and the lock back to `ready`. A real save and
// resume run in test/integration/suspend-resume.test.ts.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DiskQuotaError, PocketError, SavedStateError } from '../../src/errors.ts';
import { type Admins, writeAdmins } from '../../src/guests/guest-admins.ts';
import { setQuota } from '../../src/session/user-quotas.ts';
import { savedStatePaths } from '../../src/session/saved-state.ts';
import { saveGuestState, type StateContext, type SuspendTarget } from '../../src/session/suspend.ts';
import { stickLayout } from '../../src/stick/layout.ts';

function fakeTarget(root: string, options: { memoryMiB?: number; failOn?: string; running?: boolean } = {}) {
  const calls: string[] = [];
  const qmp = {
    greeting: { version: { qemu: { major: 10, minor: 0, micro: 0 }, package: '' } },
    stop: async () => void calls.push('qmp stop'),
    cont: async () => void calls.push('qmp cont'),
    execute: async (command: string) => {
      calls.push(`qmp ${command}`);
      if (command === options.failOn) throw new PocketError('guestFailed', `${command} refused`);
      return command === 'query-machines' ? [{ name: 'pc-q35-10.0', alias: 'q35' }] : {};
    },
  };
  const target = {
    guest: 'default',
    layout: stickLayout(root),
    machine: {
      spec: { memoryMiB: options.memoryMiB ?? 256, cpus: 1, accelerator: 'tcg', cpuModel: 'qemu64' },
      qmp,
      process: { running: options.running ?? true },
      agent: { run: async (path: string) => void calls.push(`agent ${path}`) },
      life: { quiesce: async () => void calls.push('life quiesce'), resume: () => void calls.push('life resume') },
    },
    lock: { update: async (change: { state?: string }) => void calls.push(`lock ${change.state}`) },
  } as unknown as SuspendTarget;
  return { target, calls };
}

describe("saving a guest's state (fake session handle)", function () {
  this.timeout(30_000);
  let root: string;
  let runtimeDir: string;
  const savedRuntimeDir = process.env['XDG_RUNTIME_DIR'];
  const context: StateContext = { key: Buffer.alloc(32, 1), user: 'alice', userId: 'a', host: null };

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'pocketvm-suspend-'));
    // The migration socket's private folder goes here, not into the host's runtime folder.
    runtimeDir = mkdtempSync(join(tmpdir(), 'pocketvm-suspend-run-'));
    process.env['XDG_RUNTIME_DIR'] = runtimeDir;
  });
  afterEach(() => {
    if (savedRuntimeDir === undefined) delete process.env['XDG_RUNTIME_DIR'];
    else process.env['XDG_RUNTIME_DIR'] = savedRuntimeDir;
    rmSync(root, { recursive: true, force: true });
    rmSync(runtimeDir, { recursive: true, force: true });
  });

  it('refuses a guest whose state could outgrow a FAT file, before touching the guest', async () => {
    const { target, calls } = fakeTarget(root, { memoryMiB: 4096 });
    await assert.rejects(saveGuestState(target, context), (error: SavedStateError) => {
      assert.ok(error instanceof SavedStateError);
      assert.equal(error.details['reason'], 'too-big');
      return true;
    });
    assert.deepEqual(calls, []);
    // The migration socket's private folder was made before the refusal: it is gone again.
    assert.deepEqual(readdirSync(runtimeDir), []);
  });

  it("refuses a state that would pass the user's disk quota, before touching the guest (exit 36)", async () => {
    const { target, calls } = fakeTarget(root, { memoryMiB: 256 });
    await writeAdmins(target.layout, setQuota<Admins>({ grants: {} }, 'alice', { diskMiB: 200 }));
    await assert.rejects(saveGuestState(target, context), (error: unknown) => {
      assert.ok(error instanceof DiskQuotaError, String(error));
      assert.equal(error.exitCode, 36);
      assert.match(
        error.message,
        /^alice's disk quota is 200 MiB: their guests hold 0 MiB on the stick, and suspending default would add a saved state \(\d+ MiB\)$/,
      );
      return true;
    });
    assert.deepEqual(calls, []);
    assert.equal(existsSync(savedStatePaths(target.layout, 'alice', 'default').dir), false);
  });

  it('refuses a guest that is not running', async () => {
    const { target, calls } = fakeTarget(root, { running: false });
    await assert.rejects(saveGuestState(target, context), /default is not running/);
    assert.deepEqual(calls, []);
  });

  it('a save that fails after the guest stopped leaves no file and the guest running', async () => {
    const { target, calls } = fakeTarget(root, { failOn: 'migrate' });
    await assert.rejects(saveGuestState(target, context), /migrate refused/);
    assert.deepEqual(calls.slice(0, 5), ['agent /bin/sync', 'lock stopping', 'life quiesce', 'qmp stop', 'qmp query-machines']);
    assert.ok(calls.includes('qmp migrate'));
    // Undone in this order: the migration cancelled, the guest continued, its placed reads resumed, the lock ready.
    assert.deepEqual(calls.slice(calls.indexOf('qmp migrate_cancel')), ['qmp migrate_cancel', 'qmp cont', 'life resume', 'lock ready']);
    const paths = savedStatePaths(stickLayout(root), 'alice', 'default');
    assert.equal(existsSync(paths.file), false);
    assert.equal(existsSync(paths.partial), false);
    assert.deepEqual(readdirSync(runtimeDir), [], "the migration socket's folder is gone");
  });
});
