// Every transition of the guest state machine, allowed and refused: first the
// table itself (every command × every state), then every command that
// changes a guest on the stick run against a real guest put in each state
// the stick can hold, checking that an accepted command lands in the table's
// state and a refused one exits 30 naming the current state and changes nothing.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { GuestStateError } from '../../src/errors.ts';
import { setProperty } from '../../src/guests/guest-config.ts';
import { cloneGuest, commitGuest, createGuest, deleteGuest, installGuest, stageChange, uninstallGuest } from '../../src/guests/guest-lifecycle.ts';
import {
  accepts,
  GUEST_COMMANDS,
  GUEST_STATES,
  type GuestCommand,
  type GuestState,
  nextState,
  requireState,
  TRANSITIONS,
} from '../../src/guests/guest-states.ts';
import { guestPaths, writeState } from '../../src/guests/guest-store.ts';
import { listGuests, viewGuest } from '../../src/guests/guest-view.ts';
import { savedStatePaths } from '../../src/session/saved-state.ts';
import type { StickLayout } from '../../src/stick/layout.ts';
import { checkPower } from '../../src/cli/commands/guest-power.ts';
import { holdSession, makeStick, payloadBuilt } from './helpers.ts';

describe('guest states: the table', () => {
  it('names a target for every command and accepts at least one state', () => {
    for (const command of GUEST_COMMANDS) {
      const rule = TRANSITIONS[command];
      assert.ok(rule.accepts.length > 0, command);
      for (const state of rule.accepts) assert.ok((GUEST_STATES as readonly string[]).includes(state), `${command} accepts unknown ${state}`);
    }
  });

  it('refuses every state a command does not accept with exit 30, naming the state and what it accepts', () => {
    let refused = 0;
    for (const command of GUEST_COMMANDS) {
      for (const state of GUEST_STATES) {
        if (accepts(command, state)) {
          assert.doesNotThrow(() => requireState(command, 'g', state));
          const to = nextState(command, state);
          assert.ok(to === 'gone' || (GUEST_STATES as readonly string[]).includes(to));
          continue;
        }
        refused += 1;
        assert.throws(
          () => requireState(command, 'g', state),
          (error: unknown) =>
            error instanceof GuestStateError &&
            error.exitCode === 30 &&
            error.message.includes(`it is ${state.replace('_', ' ')}`) &&
            (error.details['accepts'] as string[]).join() === TRANSITIONS[command].accepts.join() &&
            typeof error.hint === 'string',
          `${command} in ${state}`,
        );
        assert.throws(() => nextState(command, state), GuestStateError);
      }
    }
    assert.ok(refused > 50, 'most pairs are refusals');
  });

  it('follows the zones lifecycle: install → ready → boot → halt, and no state is a dead end', () => {
    assert.equal(nextState('install', 'configured'), 'installed');
    assert.equal(nextState('ready', 'installed'), 'ready');
    assert.equal(nextState('boot', 'ready'), 'running');
    assert.equal(nextState('boot', 'installed'), 'running');
    assert.equal(nextState('halt', 'running'), 'installed');
    assert.equal(nextState('shutdown', 'running'), 'installed');
    assert.equal(nextState('suspend', 'running'), 'suspended');
    assert.equal(nextState('uninstall', 'installed'), 'configured');
    assert.equal(nextState('delete', 'configured'), 'gone');
    // From every state some command leads on (incomplete and unavailable included).
    for (const state of GUEST_STATES)
      assert.ok(
        GUEST_COMMANDS.some((c) => c !== 'config-stage' && c !== 'console' && c !== 'login' && accepts(c, state)),
        state,
      );
  });
});

describe('guest states: every stick command in every state', function () {
  this.timeout(120_000);
  let stick: { layout: StickLayout; remove: () => Promise<void> };
  before(async function () {
    if (!payloadBuilt()) this.skip();
    stick = await makeStick('pocketvm-guest-states-');
    // A second payload, removed later, for unavailable guests.
    await cp(join(stick.layout.payloadRoot, 'default'), join(stick.layout.payloadRoot, 'other'), { recursive: true });
    const manifest = join(stick.layout.payloadRoot, 'other', 'guest.json');
    await writeFile(manifest, (await readFile(manifest, 'utf8')).replace('"name": "default"', '"name": "other"'));
  });
  after(async () => {
    await stick?.remove();
  });

  /** A pid that is certainly dead: a child that has exited. */
  const deadPid = () => spawnSync('true').pid!;
  let counter = 0;

  /** A guest named freshly, put in `state` the way the stick would hold it. */
  async function guestIn(state: GuestState): Promise<string> {
    const { layout } = stick;
    const name = `g${++counter}`;
    await rm(layout.lockFile, { force: true });
    if (state === 'unavailable') {
      await cp(join(layout.payloadRoot, 'default'), join(layout.payloadRoot, 'other'), { recursive: true, force: false, errorOnExist: false });
      await createGuest(layout, name, 'other');
      await rm(join(layout.payloadRoot, 'other'), { recursive: true });
      return name;
    }
    await createGuest(layout, name, 'default');
    if (state === 'configured') return name;
    if (state === 'incomplete') {
      await writeState(guestPaths(layout, name), 'incomplete', {
        pid: deadPid(),
        hostname: hostname(),
        startedAt: new Date().toISOString(),
        command: 'install',
      });
      return name;
    }
    await installGuest(layout, name);
    if (state === 'installed') return name;
    if (state === 'suspended') {
      const saved = savedStatePaths(layout, 'alice', name);
      await mkdir(saved.dir, { recursive: true });
      await writeFile(saved.file, 'saved');
      return name;
    }
    // A live session's lock: starting (ready), ready (running), stopping (shutting down), down (QEMU gone, teardown running).
    await holdSession(layout, name, state === 'ready' ? 'starting' : state === 'running' ? 'ready' : state === 'down' ? 'down' : 'stopping');
    return name;
  }

  const runners: Partial<Record<GuestCommand, (layout: StickLayout, name: string) => Promise<unknown>>> = {
    'config-stage': (layout, name) => stageChange(layout, name, (c) => setProperty(c, 'cpus', '1')),
    'config-commit': async (layout, name) => {
      // Staging is allowed in every state the commit is tested in but unavailable.
      await stageChange(layout, name, (c) => setProperty(c, 'cpus', '1')).catch(() => {});
      return commitGuest(layout, name);
    },
    install: (layout, name) => installGuest(layout, name),
    uninstall: (layout, name) => uninstallGuest(layout, name, { yes: true }),
    delete: (layout, name) => deleteGuest(layout, name, { yes: true }),
    clone: (layout, name) => cloneGuest(layout, name, `${name}-copy`),
  };

  for (const [command, run] of Object.entries(runners) as Array<[GuestCommand, (layout: StickLayout, name: string) => Promise<unknown>]>) {
    for (const state of GUEST_STATES) {
      const allowed = accepts(command, state);
      it(`${command} in ${state}: ${allowed ? 'allowed' : 'refused'}`, async function () {
        const { layout } = stick;
        const name = await guestIn(state);
        const before = await viewGuest(layout, name, { repair: false });
        assert.equal(before?.state, state, 'the guest is in the state under test');
        if (!allowed) {
          await assert.rejects(
            run(layout, name),
            (error: unknown) => error instanceof GuestStateError && error.exitCode === 30 && error.message.includes(state.replace('_', ' ')),
          );
          assert.equal((await viewGuest(layout, name, { repair: false }))?.state, state, 'a refusal changes nothing');
          return;
        }
        await run(layout, name);
        const to = nextState(command, state);
        const after = await viewGuest(layout, name, { repair: false });
        if (to === 'gone') assert.equal(after, undefined);
        else assert.equal(after?.state, to);
        if (command === 'clone') assert.equal((await viewGuest(layout, `${name}-copy`))?.state, 'installed');
        // The list answers, whatever state the guests are in.
        assert.ok((await listGuests(layout, { repair: false })).length > 0);
      });
    }
  }

  // The power verbs, console and login (src/cli/commands/guest-power.ts, console.ts) check the guest's
  // state before they reach a session: every state, allowed or refused with exit 30 naming it.
  // What an allowed one then does to a real guest: test/integration/guest-power.test.ts.
  const POWER: GuestCommand[] = ['ready', 'boot', 'halt', 'reboot', 'shutdown', 'suspend', 'console', 'login'];
  for (const command of POWER) {
    for (const state of GUEST_STATES) {
      const allowed = accepts(command, state);
      it(`guest ${command} in ${state}: ${allowed ? 'allowed' : 'refused'} by its state check`, async () => {
        const { layout } = stick;
        const name = await guestIn(state);
        if (allowed) assert.equal((await checkPower(layout, name, command)).state, state);
        else
          await assert.rejects(
            checkPower(layout, name, command),
            (error: unknown) =>
              error instanceof GuestStateError &&
              error.exitCode === 30 &&
              error.message.includes(`it is ${state.replace('_', ' ')}`) &&
              error.details['command'] === TRANSITIONS[command].says,
          );
        assert.equal((await viewGuest(layout, name, { repair: false }))?.state, state, 'a check changes nothing');
      });
    }
  }
});
