// The stick-full watch (src/session/stick-full.ts) on the events QEMU sends
// for the personal disk's werror=stop,rerror=stop: a read or write error that
// is not ENOSPC pauses the guest too; the watch says so once, retries the
// request (cont) after IO_RETRY_MS, and a retry that fails again stays quiet.
// QEMU's side is checked in test/vmm/personal-disk-device.test.ts; here the
// QMP events are given by hand.
import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { IO_RETRY_MS, watchStickFull, type WatchedSession } from '../../src/session/stick-full.ts';
import type { QmpEvent } from '../../src/vmm/qmp-client.ts';

function fakeSession() {
  const listeners = new Set<(event: QmpEvent) => void>();
  const conts: number[] = [];
  const qmp = {
    onEvent: (listener: (event: QmpEvent) => void) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    cont: async () => void conts.push(Date.now()),
  };
  const session = { machine: { qmp }, layout: { root: tmpdir() }, stickFull: undefined, suspending: false } as unknown as WatchedSession;
  const emit = (data: Record<string, unknown>) => {
    for (const listener of listeners)
      listener({ event: 'BLOCK_IO_ERROR', data: { device: '', 'node-name': 'pvm-home', ...data }, timestamp: { seconds: 0, microseconds: 0 } });
  };
  return { session, emit, conts };
}

describe('the stick-full watch on I/O errors (werror/rerror=stop)', function () {
  this.timeout(60_000);

  it('says a read error once, retries it, and stays quiet when the retry fails again', async () => {
    const { session, emit, conts } = fakeSession();
    const told: string[] = [];
    const stop = watchStickFull(session, (message) => told.push(message));
    try {
      emit({ operation: 'read', action: 'stop', reason: 'Input/output error' });
      assert.equal(told.length, 1);
      assert.equal(
        told[0],
        `the stick failed a read of the personal disk (Input/output error): the guest is paused so that nothing is lost and tries again every ${IO_RETRY_MS / 1000} s; check the stick and its port`,
      );
      assert.equal(session.stickFull?.message, told[0]);
      await new Promise((resolve) => setTimeout(resolve, IO_RETRY_MS + 500));
      assert.equal(conts.length, 1, 'the request was retried');
      assert.equal(session.stickFull, undefined);
      // The retry fails again: paused again, in status, not said again.
      emit({ operation: 'write', action: 'stop', reason: 'Input/output error' });
      assert.equal(told.length, 1);
      // (Read afresh: the assertion above narrowed the property for the compiler.)
      const again = (session as { stickFull?: { message: string } }).stickFull;
      assert.match(again?.message ?? '', /^the stick failed a write of the personal disk/);
    } finally {
      stop();
    }
  });

  it('leaves errors QEMU reported to the guest alone (action report), and ENOSPC to the full-stick path', () => {
    const { session, emit } = fakeSession();
    const told: string[] = [];
    const stop = watchStickFull(session, (message) => told.push(message));
    try {
      emit({ operation: 'read', action: 'report', reason: 'Input/output error' });
      assert.equal(session.stickFull, undefined);
      emit({ operation: 'write', action: 'stop', nospace: true, reason: 'No space left on device' });
      assert.match(told[0] ?? '', /^the stick is full: the guest is paused so that nothing is lost/);
    } finally {
      stop();
    }
  });
});
