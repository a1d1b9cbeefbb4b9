// The Session (src/session/session.ts) built whole from fake parts: what it
// reports, its teardown once QEMU is gone (the launch's hooks and its own,
// newest first, then the lock; with the stick pulled out each hook bounded and
// the lock let go in memory only), stop and suspend refusals. Real sessions
// run in test/integration/session.test.ts and the tests beside it.
import assert from 'node:assert/strict';
import { StickError, UsageError } from '../../src/errors.ts';
import { Teardown } from '../../src/session/launch/teardown.ts';
import { Session, type SessionParts } from '../../src/session/session.ts';
import type { StickRemoval } from '../../src/session/surprise-removal.ts';

function fakeParts(extra: Partial<SessionParts> = {}) {
  const calls: string[] = [];
  let exit!: (value: unknown) => void;
  const exited = new Promise((resolve) => (exit = resolve));
  const machine = {
    spec: { accelerator: 'tcg', memoryMiB: 256, cpus: 1 },
    state: 'running',
    process: { pid: 4242, running: true, exited },
    timings: { readyMs: 1234 },
    logs: { qemu: '/stick/run/default.qemu.log', console: '/stick/run/default.console.log' },
    shutdown: async () => {
      calls.push('machine.shutdown');
      exit({ code: 0 });
      return { step: 'powerdown', ms: 1, attempts: [], exit: { code: 0 } };
    },
    kill: () => calls.push('machine.kill'),
  };
  const lock = {
    update: async (change: { state?: string }) => void calls.push(`lock ${change.state}`),
    release: async () => void calls.push('lock.release'),
    abandon: () => void calls.push('lock.abandon'),
  };
  const parts = {
    layout: { root: '/stick' },
    lock,
    payload: { manifest: { name: 'default' } },
    machine,
    timings: { preparedMs: 10, readyMs: 20, boot: machine.timings },
    acceleratorNotes: [],
    ...extra,
  } as unknown as SessionParts;
  return { parts, calls, exit };
}

describe('a Session built whole (fake parts)', function () {
  this.timeout(20_000);

  it('reports what the launch gave it', () => {
    const recovery = { summary: 'checked' } as unknown as NonNullable<SessionParts['recovery']>;
    const resumed = { file: '/stick/state', savedAt: '', sameHost: true, bytes: 1, loadMs: 2, clockStepMs: 0 };
    const { parts } = fakeParts({ user: 'alice', recovery, resumed });
    const status = new Session(parts).status();
    assert.equal(status.guest, 'default');
    assert.equal(status.user, 'alice');
    assert.equal(status.qemuPid, 4242);
    assert.equal(status.bootMs, 1234);
    assert.equal(status.recovery, recovery);
    assert.equal(status.resumed, resumed);
    assert.equal(new Session(fakeParts().parts).status().user, null);
  });

  it("once QEMU is gone: the lock says down (zones' down: the platform not yet torn down), then every hook newest first (the session's own, then the launch's), then the lock", async () => {
    const teardown = new Teardown();
    const { parts, calls, exit } = fakeParts({ teardown });
    teardown.add(() => void calls.push('launch: registry'));
    teardown.add(() => void calls.push('launch: channel'));
    const session = new Session(parts);
    session.onTeardown(async () => void calls.push('control server'));
    exit({ code: 0 });
    assert.equal(await session.ended, undefined);
    assert.deepEqual(calls, ['lock down', 'control server', 'launch: channel', 'launch: registry', 'lock.release']);
  });

  it('with the stick pulled out: each hook waited on for a second at most, the lock let go in memory only', async () => {
    const removal = { removal: undefined as StickRemoval | undefined };
    const { parts, calls, exit } = fakeParts({ removalWatch: removal });
    const session = new Session(parts);
    session.onTeardown(() => new Promise(() => {})); // I/O on a device that is gone never lands
    session.onTeardown(async () => void calls.push('first hook'));
    removal.removal = { message: 'the stick was removed' } as StickRemoval;
    assert.equal(session.removal, removal.removal);
    const started = performance.now();
    exit({ signal: 'SIGKILL' });
    await session.ended;
    assert.ok(performance.now() - started < 5_000);
    assert.deepEqual(calls, ['first hook', 'lock.abandon']);
  });

  it('stop shuts the guest down once, however often it is asked', async () => {
    const { parts, calls } = fakeParts();
    const session = new Session(parts);
    const [first, second] = await Promise.all([session.stop(), session.stop()]);
    assert.equal(first, second);
    assert.deepEqual(calls, ['lock stopping', 'machine.shutdown', 'lock down', 'lock.release']);
  });

  it('refuses to suspend without a user, or while the guest is paused on a full stick', async () => {
    const anonymous = fakeParts();
    await assert.rejects(new Session(anonymous.parts).suspend(), UsageError);
    const signedIn = fakeParts({ stateContext: { key: Buffer.alloc(32), user: 'alice', userId: 'a', host: null } });
    const withUser = new Session(signedIn.parts);
    withUser.stickFull = { since: '', message: 'full', full: true };
    await assert.rejects(withUser.suspend(), StickError);
    assert.equal(withUser.suspending, false);
    assert.deepEqual([...anonymous.calls, ...signedIn.calls], [], 'the guest was not touched');
  });
});
