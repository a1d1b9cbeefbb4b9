// The migration helpers against a real QEMU, without booting a guest: a
// paused q35 machine with a little memory migrates as well as a running one.
// Test tier: integration (starts QEMU).
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Duplex, PassThrough } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { pipeline } from 'node:stream/promises';
import { SavedStateError } from '../../src/errors.ts';
import { listenForMigration, migrateIn, migrateOut, parseQemuVersionOutput, qemuVersionString, resolvedMachineType } from '../../src/vmm/migration.ts';
import { QmpClient } from '../../src/vmm/qmp-client.ts';
import { OpenedState, readStateHead, StateSealer } from '../../src/vmm/state-cipher.ts';
import { bareQemuArgs, QEMU } from './bare-qemu.ts';

const started: ChildProcess[] = [];

async function startQemu(
  options: { incoming?: boolean } = {},
): Promise<{ child: ChildProcess; qmp: QmpClient; stream: Duplex; exited: Promise<number | null> }> {
  const child = spawn(QEMU, bareQemuArgs('q35', '-cpu', 'Nehalem,enforce', '-m', '32M', ...(options.incoming ? ['-incoming', 'defer'] : [])), {
    stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'],
  });
  started.push(child);
  child.stderr?.resume();
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const qmp = await QmpClient.connect(child.stdio[3] as Duplex, { timeoutMs: 10_000 });
  return { child, qmp, stream: child.stdio[4] as Duplex, exited };
}

describe('migration helpers (real QEMU, no guest)', function () {
  this.timeout(60_000);
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pocketvm-migration-'));
  });
  after(async () => {
    for (const child of started) child.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });

  it('reads the same QEMU version from --version as from the QMP greeting', async () => {
    const text = spawnSync(QEMU, ['--version'], { encoding: 'utf8' }).stdout;
    const { qmp, child } = await startQemu();
    assert.equal(parseQemuVersionOutput(text), qemuVersionString(qmp.greeting.version));
    assert.equal(parseQemuVersionOutput('QEMU emulator version 8.2.1\n'), '8.2.1');
    assert.match(await resolvedMachineType(qmp), /^pc-q35-\d+\.\d+$/);
    child.kill('SIGKILL');
  });

  it('saves over a private socket, seals, opens, and loads over an inherited descriptor', async () => {
    const key = randomBytes(32);
    const source = await startQemu();
    const socketDir = await mkdtemp(join(tmpdir(), 'pocketvm-'));
    const socket = await listenForMigration(socketDir);
    const file = join(dir, 'state');
    const out = await open(file, 'w');
    const written = socket.connection.then((connection) =>
      pipeline(connection, new StateSealer(key, { format: 'test' }, { chunkBytes: 256 * 1024 }), out.createWriteStream()),
    );
    const result = await migrateOut(source.qmp, socket.uri, { timeoutMs: 30_000 });
    await written;
    await socket.close();
    assert.ok(result.ramBytes > 0);
    assert.equal((await source.qmp.queryStatus()).status, 'postmigrate');

    const target = await startQemu({ incoming: true });
    const handle = await open(file, 'r');
    const opened = new OpenedState(key, await readStateHead(handle));
    const raw = handle.createReadStream({ start: opened.dataOffset, autoClose: false });
    const loaded = await migrateIn(target.qmp, 4, raw.pipe(opened.reader()), target.stream, { timeoutMs: 30_000 });
    await handle.close();
    assert.ok(loaded.ms >= 0);
    // Loaded and waiting for cont (`prelaunch`: the source never ran).
    assert.match((await target.qmp.queryStatus()).status, /^(paused|prelaunch)$/);
    await target.qmp.cont();
    assert.equal((await target.qmp.queryStatus()).status, 'running');
    source.child.kill('SIGKILL');
    target.child.kill('SIGKILL');
  });

  it('throws the source stream’s own error when it fails mid-load, and QEMU gives up', async () => {
    const source = await startQemu();
    const socketDir = await mkdtemp(join(tmpdir(), 'pocketvm-'));
    const socket = await listenForMigration(socketDir);
    const collected = socket.connection.then((connection) => buffer(connection));
    await migrateOut(source.qmp, socket.uri, { timeoutMs: 30_000 });
    const state = await collected;
    await socket.close();
    source.child.kill('SIGKILL');

    const target = await startQemu({ incoming: true });
    const failing = new PassThrough();
    failing.write(state.subarray(0, 64 * 1024));
    setTimeout(() => failing.destroy(new SavedStateError('the saved state is damaged: chunk 2 does not verify', { details: { reason: 'damaged' } })), 200);
    await assert.rejects(
      migrateIn(target.qmp, 4, failing, target.stream, { timeoutMs: 30_000 }),
      (error) => error instanceof SavedStateError && error.details['reason'] === 'damaged',
    );
    await target.exited;
  });

  it('serves one connection only, and removes its private directory when closed', async () => {
    const socketDir = await mkdtemp(join(tmpdir(), 'pocketvm-'));
    const socket = await listenForMigration(socketDir);
    const path = socket.uri.slice('unix:'.length);
    const first = connect(path);
    await once(first, 'connect');
    const accepted = await socket.connection;
    const second = connect(path);
    const [error] = (await once(second, 'error').catch((e: unknown) => [e])) as [NodeJS.ErrnoException];
    assert.match(String(error.code), /ECONNREFUSED|ENOENT/);
    first.destroy();
    accepted.destroy();
    await socket.close();
    assert.equal(existsSync(socketDir), false);
  });
});
