// Reconciling a guest's recorded state with what is really there: never a
// stale "running", a dead launcher's half-done change shown as incomplete, a
// live one's as busy, one unreadable guest listed as unavailable while the
// list still answers, and what dead launchers left swept. Also the CLI's
// `guest list --json` (shutting_down spelled so) and its exit codes.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { GuestStateError } from '../../src/errors.ts';
import { createGuest, installGuest } from '../../src/guests/guest-lifecycle.ts';
import { guestPaths, me, writeState } from '../../src/guests/guest-store.ts';
import { listGuests, viewGuest } from '../../src/guests/guest-view.ts';
import { guestsRoot, type StickLayout } from '../../src/stick/layout.ts';
import { holdSession, makeStick, payloadBuilt } from './helpers.ts';

const launcher = new URL('../../launcher', import.meta.url).pathname;

describe('guest states: reconciled with what runs', function () {
  this.timeout(120_000);
  let stick: { layout: StickLayout; remove: () => Promise<void> };
  let layout: StickLayout;
  before(async function () {
    if (!payloadBuilt()) this.skip();
    stick = await makeStick('pocketvm-guest-reconcile-');
    layout = stick.layout;
  });
  after(async () => {
    await stick?.remove();
  });
  afterEach(async () => {
    if (layout) await rm(layout.lockFile, { force: true });
  });

  const deadPid = () => spawnSync('true').pid!;
  const stateFile = async (name: string) => JSON.parse(await readFile(guestPaths(layout, name).state, 'utf8')) as { state: string; op?: unknown };

  it('a recorded "running" with no session is installed, and the record is repaired', async () => {
    await createGuest(layout, 'stale', 'default');
    await installGuest(layout, 'stale');
    await writeState(guestPaths(layout, 'stale'), 'running');
    const [view] = (await listGuests(layout)).filter((g) => g.name === 'stale');
    assert.equal(view?.state, 'installed');
    assert.equal(view?.reconciledFrom, 'running');
    assert.equal((await stateFile('stale')).state, 'installed');
  });

  it("a dead session's lock does not make its guest running; a live one does, with its state", async () => {
    await holdSession(layout, 'stale', 'ready');
    assert.equal((await viewGuest(layout, 'stale'))?.state, 'running');
    await holdSession(layout, 'stale', 'stopping');
    assert.equal((await viewGuest(layout, 'stale'))?.state, 'shutting_down');
    await holdSession(layout, 'stale', 'starting');
    assert.equal((await viewGuest(layout, 'stale'))?.state, 'ready');
    const dead = JSON.parse(await readFile(layout.lockFile, 'utf8')) as Record<string, unknown>;
    await writeFile(layout.lockFile, JSON.stringify({ ...dead, pid: deadPid(), processStart: undefined }));
    assert.equal((await viewGuest(layout, 'stale'))?.state, 'installed');
  });

  it("a dead launcher's change is incomplete; a live one's is busy, and commands wait for it (exit 30)", async () => {
    await createGuest(layout, 'halfway', 'default');
    await writeState(guestPaths(layout, 'halfway'), 'incomplete', { pid: deadPid(), hostname: hostname(), startedAt: 'then', command: 'install' });
    assert.equal((await viewGuest(layout, 'halfway'))?.state, 'incomplete');
    await writeState(guestPaths(layout, 'halfway'), 'incomplete', me('install'));
    const view = await viewGuest(layout, 'halfway');
    assert.equal(view?.busy?.pid, process.pid);
    await assert.rejects(installGuest(layout, 'halfway'), (error: unknown) => error instanceof GuestStateError && error.details['reason'] === 'busy');
  });

  it('one unreadable guest is listed as unavailable; the others still are listed', async () => {
    await createGuest(layout, 'broken', 'default');
    await writeFile(guestPaths(layout, 'broken').record, '{ half');
    const guests = await listGuests(layout);
    assert.equal(guests.find((g) => g.name === 'broken')?.state, 'unavailable');
    assert.match(guests.find((g) => g.name === 'broken')?.reason ?? '', /cannot be read/);
    assert.equal(guests.find((g) => g.name === 'stale')?.state, 'installed');
    assert.equal(guests.find((g) => g.name === 'default')?.implicit, true);
  });

  it('sweeps the scratch folders of dead launchers, keeps those of live ones', async () => {
    const dead = join(guestsRoot(layout), `.new-ghost-${deadPid()}-0123abcd`);
    const live = join(guestsRoot(layout), `.gone-ghost-${process.pid}-0123abcd`);
    await mkdir(dead);
    await mkdir(live);
    const guests = await listGuests(layout);
    assert.ok(!guests.some((g) => g.name.includes('ghost')));
    assert.ok(!existsSync(dead));
    assert.ok(existsSync(live));
    await rm(live, { recursive: true });
  });

  it('guest list --json spells shutting_down, and the CLI exits 30 and 31 with one line', async () => {
    await holdSession(layout, 'stale', 'stopping');
    const list = await execa(launcher, ['guest', 'list', '--json', '--stick', layout.root]);
    const guests = JSON.parse(list.stdout) as Array<{ name: string; state: string }>;
    assert.deepEqual(
      guests.find((g) => g.name === 'stale'),
      { name: 'stale', state: 'shutting_down', source: { kind: 'payload', name: 'default' }, staged: false },
    );
    const refused = await execa(launcher, ['guest', 'uninstall', 'stale', '--stick', layout.root], { reject: false });
    assert.equal(refused.exitCode, 30);
    assert.match(refused.stderr, /refuses guest stale: it is shutting down/);
    const bad = await execa(launcher, ['guest', 'config', 'stale', 'set', 'memory', '-5', '--json', '--stick', layout.root], { reject: false });
    assert.equal(bad.exitCode, 31);
    assert.equal((JSON.parse(bad.stdout) as { error: { kind: string } }).error.kind, 'guestConfig');
    const missing = await execa(launcher, ['guest', 'install', 'nobody', '--stick', layout.root], { reject: false });
    assert.equal(missing.exitCode, 30);
    assert.match(missing.stderr, /no guest named nobody/);
  });
});
