// The launch pipeline itself (src/session/launch/launch-session.ts) with its
// steps replaced by recording fakes: the steps run in their order, each gets
// what the one before produced, and a failing step closes what the steps
// before it opened (newest first), lets the stick go and fails with one
// error: the resume's explanation when resuming, the removal's when the stick
// was pulled out. The real steps run in test/integration/ (session, demo, ...).
import assert from 'node:assert/strict';
import { PocketError, StickRemovedError, UsageError } from '../../src/errors.ts';
import type { HostAdapter } from '../../src/hostprobe/host-adapter.ts';
import type { Restore } from '../../src/session/launch/feature.ts';
import { launchSession, type LaunchSteps } from '../../src/session/launch/launch-session.ts';
import type { LaunchContext } from '../../src/session/launch/launch-context.ts';

const HOST = { os: 'linux', platform: 'linux' } as unknown as HostAdapter;
const OPTIONS = { stickRoot: '/nowhere', guest: 'default', accelerator: 'tcg' as const, command: 'test' };

/** Steps that record their calls, add a teardown hook each, and fail where told. */
function fakeSteps(options: { failAt?: keyof LaunchSteps; removed?: boolean; restore?: boolean; user?: boolean } = {}) {
  const calls: string[] = [];
  const closed: string[] = [];
  const diskKey = Buffer.alloc(32, 7);
  let contextSeen: LaunchContext | undefined;
  const lock = {
    release: async () => void calls.push('lock.release'),
    abandon: () => void calls.push('lock.abandon'),
  };
  const guardSignal = new AbortController();
  const guard = {
    signal: guardSignal.signal,
    removed: options.removed ? { signal: 'io', source: 'io' } : undefined,
    removal: undefined,
    stop: () => void calls.push('guard.stop'),
    bootError: (hasDisk: boolean) => new StickRemovedError(`removed (disk: ${hasDisk})`),
    protect: () => {},
  };
  const restore: Restore = {
    describe: () => 'resuming',
    finish: async () => ({ file: '', savedAt: '', sameHost: true, bytes: 0, loadMs: 0, clockStepMs: 0 }),
    explain: (error) => new PocketError('savedState', `could not be resumed: ${(error as Error).message}`),
  };
  const step =
    <T>(name: keyof LaunchSteps, output: T) =>
    async (ctx: LaunchContext, ...rest: unknown[]): Promise<T> => {
      contextSeen = ctx;
      calls.push(name);
      ctx.teardown?.add(() => void closed.push(name));
      if (options.failAt === name) throw new Error(`${name} failed`);
      void rest;
      return output;
    };
  const steps = {
    prepareStick: async (ctx: LaunchContext) => {
      contextSeen = ctx;
      calls.push('prepareStick');
      if (options.failAt === 'prepareStick') throw new Error('prepareStick failed');
      return { layout: { root: '/nowhere' }, qemu: {}, lock, payload: {} };
    },
    readHost: step('readHost', { profile: {}, verdicts: {}, plan: { candidates: ['tcg'], notes: ['tcg requested'] } }),
    guardStick: async () => {
      calls.push('guardStick');
      if (options.failAt === 'guardStick') throw new Error('guardStick failed');
      return guard;
    },
    signIn: async (ctx: LaunchContext) => {
      calls.push('signIn');
      if (options.user) ctx.user = { name: 'alice', id: 'a', diskKey } as unknown as LaunchContext['user'];
      if (options.failAt === 'signIn') throw new Error('signIn failed');
      return { user: ctx.user, recovery: undefined };
    },
    openFeatures: step('openFeatures', {
      features: [],
      sizing: { memoryMiB: 256, cpus: 1, reasons: [] },
      logs: {},
      transportLog: { line: () => {} },
      execs: {},
    }),
    planMachine: (args: { sizing: unknown }) => {
      calls.push('planMachine');
      assert.deepEqual(args.sizing, { memoryMiB: 256, cpus: 1, reasons: [] }, "the plan is made from the features' sizing");
      if (options.failAt === 'planMachine') throw new Error('planMachine failed');
      return { spec: {}, accelerators: { candidates: ['tcg'], notes: [] }, channels: [], sharesGuestRam: false, ...(options.restore ? { restore } : {}) };
    },
    bootGuest: step('bootGuest', { machine: { timings: {} } }),
    startSession: step('startSession', { guest: 'default' }),
  } as unknown as LaunchSteps;
  return { steps, calls, closed, diskKey, context: () => contextSeen };
}

describe('the launch pipeline (fake steps)', function () {
  it('runs the steps in order and returns the session the last one built', async () => {
    const { steps, calls, closed, diskKey } = fakeSteps({ user: true });
    const session = await launchSession(OPTIONS, steps, HOST);
    assert.deepEqual(session as unknown, { guest: 'default' });
    assert.deepEqual(calls, ['prepareStick', 'readHost', 'guardStick', 'signIn', 'openFeatures', 'planMachine', 'bootGuest', 'startSession']);
    assert.deepEqual(closed, [], 'nothing is closed while the session runs: its teardown has it');
    assert.ok(
      diskKey.every((byte) => byte === 0),
      "the launcher's copy of the disk key is zeroed once QEMU has it",
    );
  });

  it('refuses a bad guest name before any step', async () => {
    const { steps, calls } = fakeSteps();
    await assert.rejects(launchSession({ ...OPTIONS, guest: 'Not/A/Guest' }, steps, HOST), UsageError);
    assert.deepEqual(calls, []);
  });

  it('a failing prepareStick runs nothing else', async () => {
    const { steps, calls } = fakeSteps({ failAt: 'prepareStick' });
    await assert.rejects(launchSession(OPTIONS, steps, HOST), /prepareStick failed/);
    assert.deepEqual(calls, ['prepareStick']);
  });

  for (const failAt of ['readHost', 'openFeatures', 'bootGuest', 'startSession'] as const) {
    it(`a failing ${failAt} closes what the steps before it opened, newest first, then releases the lock`, async () => {
      const { steps, calls, closed, diskKey } = fakeSteps({ failAt, user: true });
      await assert.rejects(launchSession(OPTIONS, steps, HOST), new RegExp(`^Error: ${failAt} failed$`));
      const order = ['readHost', 'guardStick', 'signIn', 'openFeatures', 'planMachine', 'bootGuest', 'startSession'];
      const ran = order.slice(0, order.indexOf(failAt) + 1);
      assert.deepEqual(calls, ['prepareStick', ...ran, ...(ran.includes('guardStick') ? ['guard.stop', 'guard.stop'] : []), 'lock.release']);
      const opened = ran.filter((name) => ['readHost', 'openFeatures', 'bootGuest', 'startSession'].includes(name));
      assert.deepEqual(closed, opened.reverse());
      if (ran.includes('signIn'))
        assert.ok(
          diskKey.every((byte) => byte === 0),
          'the disk key is zeroed on failure too',
        );
    });
  }

  it('a failure while resuming is explained by the resume (the saved state is kept)', async () => {
    const { steps } = fakeSteps({ failAt: 'bootGuest', restore: true });
    await assert.rejects(launchSession(OPTIONS, steps, HOST), (error: PocketError) => {
      assert.equal(error.message, 'could not be resumed: bootGuest failed');
      return true;
    });
  });

  it('with the stick pulled out, the lock is let go in memory only and the removal is the error', async () => {
    const { steps, calls, closed } = fakeSteps({ failAt: 'bootGuest', removed: true, user: true });
    await assert.rejects(launchSession(OPTIONS, steps, HOST), (error: Error) => {
      assert.ok(error instanceof StickRemovedError);
      assert.equal(error.message, 'removed (disk: true)');
      return true;
    });
    assert.ok(calls.includes('lock.abandon'));
    assert.ok(!calls.includes('lock.release'), 'nothing is written to a stick that is gone');
    assert.deepEqual(closed, ['bootGuest', 'openFeatures', 'readHost']);
  });

  it("gives every step one context: the caller's options, the host, one teardown", async () => {
    const { steps, context } = fakeSteps();
    const events: string[] = [];
    await launchSession({ ...OPTIONS, onEvent: (event) => events.push(event.message) }, steps, HOST);
    const ctx = context()!;
    assert.equal(ctx.host, HOST);
    assert.equal(ctx.options.guest, 'default');
    ctx.emit({ stage: 'boot', message: 'hello' });
    assert.deepEqual(events, ['hello']);
  });
});
