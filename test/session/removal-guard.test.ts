// The removal guard (src/session/surprise-removal.ts) on a fake presence
// source and a fake session handle: a removal before the session exists fails
// the boot with the one line; once it protects a session, a removal kills its
// QEMU at once and is kept as the session's report. The real unplug runs in
// test/integration/surprise-removal.test.ts.
import assert from 'node:assert/strict';
import { StickRemovedError } from '../../src/errors.ts';
import { RemovalGuard, type GuardedSession } from '../../src/session/surprise-removal.ts';
import type { PresenceSource, SourceReport } from '../../src/stick/presence-source.ts';

function fakeSource() {
  let report: SourceReport | undefined;
  const source: PresenceSource = {
    name: 'fake',
    start: async (given) => {
      report = given;
      return true;
    },
    recheck: () => {},
    stop: () => {},
  };
  return { source, unplug: () => report!.removed({ signal: 'usb', detail: "the stick's USB device detached" }) };
}

function fakeSession(user: string | undefined) {
  const calls: string[] = [];
  let exit!: (value: unknown) => void;
  const exited = new Promise((resolve) => (exit = resolve));
  const session = {
    machine: { qmp: { isClosed: false, execute: async () => [] }, kill: () => calls.push('kill'), process: { exited } },
    user,
  } as unknown as GuardedSession;
  return { session, calls, exit };
}

describe('the removal guard (fake presence source, fake session)', () => {
  it("a removal during boot aborts the boot signal and gives the boot's error", async () => {
    const { source, unplug } = fakeSource();
    const guard = await RemovalGuard.start('/nowhere', { sources: [source] });
    try {
      assert.equal(guard.signal.aborted, false);
      unplug();
      assert.equal(guard.signal.aborted, true);
      const error = guard.bootError(false);
      assert.ok(error instanceof StickRemovedError);
      assert.equal(error.message, 'the stick was removed; the guest was stopped while it booted; plug the stick back in and run launcher again');
      assert.equal(guard.removal, undefined, 'no session was stopped');
    } finally {
      guard.stop();
    }
  });

  it('once protecting a session: a removal kills its QEMU once and is kept as its report', async () => {
    const { source, unplug } = fakeSource();
    const guard = await RemovalGuard.start('/nowhere', { sources: [source], flushSampleMs: 60_000 });
    const { session, calls, exit } = fakeSession('alice');
    try {
      guard.protect(session);
      assert.equal(guard.removal, undefined);
      unplug();
      unplug();
      assert.deepEqual(calls, ['kill']);
      const removal = guard.removal!;
      assert.equal(removal.phase, 'running');
      assert.equal(removal.source, 'fake');
      assert.equal(removal.signal, 'usb');
      assert.match(
        removal.message,
        /^the stick was removed; the guest was stopped; your disk is encrypted and had not been flushed by the guest yet in this session/,
      );
      exit({ signal: 'SIGKILL' });
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(typeof removal.qemuGoneMs, 'number');
    } finally {
      guard.stop();
    }
  });

  it('protecting a session after the stick is already gone stops it at once', async () => {
    const { source, unplug } = fakeSource();
    const guard = await RemovalGuard.start('/nowhere', { sources: [source], flushSampleMs: 60_000 });
    const { session, calls } = fakeSession(undefined);
    try {
      unplug();
      guard.protect(session);
      assert.deepEqual(calls, ['kill']);
      assert.equal(guard.removal?.message, 'the stick was removed; the guest was stopped; plug the stick back in and run launcher again');
    } finally {
      guard.stop();
    }
  });
});
