// The full-stick watch and a suspend (src/session/stick-full.ts): the watch
// never continues a guest that a suspend has stopped, and continues it once
// the suspend is over (failed, the guest running again); a suspend asked for
// while the guest is paused for a full stick is refused with exit 9. The
// watch talks to a scripted QMP peer through the real QmpClient: it sends
// QEMU's BLOCK_IO_ERROR event and records the commands.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { duplexPair } from 'node:stream';
import { ExitCode, PocketError } from '../../src/errors.ts';
import { refuseSuspendWhileFull, type StickFullState, watchStickFull } from '../../src/session/stick-full.ts';
import { QmpClient } from '../../src/vmm/qmp-client.ts';

const GREETING = '{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": "test"}, "capabilities": ["oob"]}}\r\n';
const NO_SPACE =
  '{"event": "BLOCK_IO_ERROR", "data": {"device": "", "node-name": "disk0", "operation": "write", "action": "stop", "nospace": true, "reason": "No space left on device"}, "timestamp": {"seconds": 1, "microseconds": 0}}\r\n';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A QMP peer that answers every command with success and remembers them. */
async function scriptedQemu(): Promise<{ qmp: QmpClient; commands: string[]; send: (line: string) => void }> {
  const [client, peer] = duplexPair();
  const commands: string[] = [];
  let buffered = '';
  peer.on('data', (chunk: Buffer) => {
    buffered += chunk.toString('utf8');
    for (let newline = buffered.indexOf('\n'); newline !== -1; newline = buffered.indexOf('\n')) {
      const request = JSON.parse(buffered.slice(0, newline)) as { execute: string; id: unknown };
      buffered = buffered.slice(newline + 1);
      commands.push(request.execute);
      peer.write(`{"return": {}, "id": ${JSON.stringify(request.id)}}\r\n`);
    }
  });
  peer.write(GREETING);
  const qmp = await QmpClient.connect(client, { timeoutMs: 2000 });
  return { qmp, commands, send: (line) => peer.write(line) };
}

describe('the full-stick watch and a suspend', function () {
  this.timeout(30_000);
  let root: string;
  beforeEach(() => (root = mkdtempSync(join(tmpdir(), 'pocketvm-stick-full-'))));
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('never continues a guest a suspend has stopped; continues it once the suspend is over', async () => {
    const { qmp, commands, send } = await scriptedQemu();
    const session = { machine: { qmp }, layout: { root }, stickFull: undefined as StickFullState | undefined, suspending: false };
    const notices: string[] = [];
    const stop = watchStickFull(session, (message) => notices.push(message));
    try {
      // A suspend under way (it stopped the guest); then QEMU says a write found no space.
      session.suspending = true;
      send(NO_SPACE);
      await sleep(200);
      assert.match(session.stickFull?.message ?? '', /^the stick is full: the guest is paused/);
      // This folder has room: without the suspend the guest would be continued at the first poll (2 s).
      await sleep(5_000);
      assert.deepEqual(
        commands.filter((c) => c === 'cont'),
        [],
        'the watch continued a guest under a suspend',
      );
      assert.ok(session.stickFull, 'still paused for space');
      // The suspend failed and is over: the watch continues the guest at its next poll.
      session.suspending = false;
      await sleep(3_000);
      assert.deepEqual(
        commands.filter((c) => c === 'cont'),
        ['cont'],
      );
      assert.equal(session.stickFull, undefined);
      assert.match(notices.at(-1) ?? '', /^space on the stick again \(\d+ MiB free\): the guest continues$/);
    } finally {
      stop();
      await qmp.close();
    }
  });

  it('a suspend while the guest is paused for a full stick is refused with one line (exit 9)', () => {
    assert.doesNotThrow(() => refuseSuspendWhileFull({ stickFull: undefined }));
    assert.throws(
      () => refuseSuspendWhileFull({ stickFull: { since: new Date().toISOString(), message: 'the stick is full: …' } }),
      (error: unknown) =>
        error instanceof PocketError &&
        error.exitCode === ExitCode.stick &&
        /^the stick is full: the guest is paused until there is room, and cannot be suspended meanwhile$/.test(error.message),
    );
  });
});
