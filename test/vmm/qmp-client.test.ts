// Test tier: integration (starts QEMU).
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { duplexPair, type Duplex } from 'node:stream';
import { TimeoutError } from '../../src/errors.ts';
import { QmpClient, QmpClosedError, QmpCommandError, QmpProtocolError, type QmpEvent } from '../../src/vmm/qmp-client.ts';
import { bareQemuArgs, QEMU } from './bare-qemu.ts';

interface RunningQemu {
  child: ChildProcess;
  qmpStream: Duplex;
  stderr: () => string;
}

const started: ChildProcess[] = [];

function startQemu(): RunningQemu {
  const child = spawn(QEMU, bareQemuArgs('none'), { stdio: ['ignore', 'ignore', 'pipe', 'pipe'] });
  started.push(child);
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  const qmpStream = child.stdio[3];
  assert.ok(qmpStream !== null && qmpStream !== undefined && 'write' in qmpStream, 'stdio[3] is a duplex stream');
  return { child, qmpStream: qmpStream as Duplex, stderr: () => stderr };
}

async function connectQemu(): Promise<RunningQemu & { qmp: QmpClient }> {
  const qemu = startQemu();
  const qmp = await QmpClient.connect(qemu.qmpStream, { timeoutMs: 10_000 });
  return { ...qemu, qmp };
}

/** A scripted peer: what the client writes arrives on `peer`; what `peer` writes, the client reads. */
function fakeChannel(): { client: Duplex; peer: Duplex; requests: () => AsyncGenerator<Record<string, unknown>> } {
  const [client, peer] = duplexPair();
  let buffered = '';
  const queue: Record<string, unknown>[] = [];
  let wake: (() => void) | undefined;
  peer.on('data', (chunk: Buffer) => {
    buffered += chunk.toString('utf8');
    let newline: number;
    while ((newline = buffered.indexOf('\n')) !== -1) {
      queue.push(JSON.parse(buffered.slice(0, newline)) as Record<string, unknown>);
      buffered = buffered.slice(newline + 1);
    }
    wake?.();
  });
  async function* requests(): AsyncGenerator<Record<string, unknown>> {
    for (;;) {
      const next = queue.shift();
      if (next !== undefined) {
        yield next;
        continue;
      }
      await new Promise<void>((resolve) => (wake = resolve));
    }
  }
  return { client, peer, requests };
}

const GREETING = '{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": "test"}, "capabilities": ["oob"]}}\r\n';

/** Greets, acknowledges qmp_capabilities, and returns a reader of later requests. */
async function connectFake(options: { commandTimeoutMs?: number; maxLineBytes?: number } = {}) {
  const channel = fakeChannel();
  const requests = channel.requests();
  channel.peer.write(GREETING);
  const connecting = QmpClient.connect(channel.client, { timeoutMs: 2000, ...options });
  const capabilities = (await requests.next()).value as Record<string, unknown>;
  assert.equal(capabilities['execute'], 'qmp_capabilities');
  channel.peer.write(`{"return": {}, "id": ${JSON.stringify(capabilities['id'])}}\r\n`);
  const qmp = await connecting;
  const nextRequest = async (): Promise<Record<string, unknown>> => (await requests.next()).value as Record<string, unknown>;
  return { ...channel, qmp, nextRequest };
}

describe('QmpClient', function () {
  this.timeout(15_000);

  afterEach(async () => {
    for (const child of started.splice(0)) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await once(child, 'exit');
      }
    }
  });

  describe('against real QEMU', () => {
    it('reads the greeting, negotiates capabilities, and reports the version', async () => {
      const { qmp } = await connectQemu();
      assert.equal(qmp.greeting.version.qemu.major, 7);
      assert.ok(qmp.greeting.capabilities.includes('oob'), `capabilities: ${qmp.greeting.capabilities.join(',')}`);
      const version = await qmp.queryVersion();
      assert.deepEqual(version.qemu, qmp.greeting.version.qemu);
      assert.equal(version.package, qmp.greeting.version.package);
    });

    it('reports prelaunch, running and paused through query-status, with RESUME and STOP events', async () => {
      const { qmp } = await connectQemu();
      assert.deepEqual(await qmp.queryStatus(), { status: 'prelaunch', running: false, singlestep: false });

      const resumed = qmp.watch('RESUME');
      await qmp.cont();
      const resume = await resumed.next({ timeoutMs: 5000 });
      resumed.close();
      assert.equal(resume.event, 'RESUME');
      assert.ok(resume.timestamp.seconds > 1_600_000_000, `timestamp ${JSON.stringify(resume.timestamp)}`);
      assert.equal((await qmp.queryStatus()).running, true);

      const stopped = qmp.waitForEvent('STOP', { timeoutMs: 5000 });
      await qmp.stop();
      assert.equal((await stopped).event, 'STOP');
      assert.deepEqual(await qmp.queryStatus(), { status: 'paused', running: false, singlestep: false });
    });

    it('keeps events that arrive before anyone waits, and filters with a predicate', async () => {
      const { qmp } = await connectQemu();
      const seen: string[] = [];
      const off = qmp.onEvent((event) => seen.push(event.event));
      const watch = qmp.watch(['STOP', 'RESUME'], { predicate: (event) => event.event === 'STOP' });
      await qmp.cont();
      await qmp.stop();
      // Both events are in by now (QMP sends them before the replies); the
      // watch kept only the STOP it asked for.
      assert.deepEqual(seen, ['RESUME', 'STOP']);
      assert.equal(watch.pending, 1);
      assert.equal((await watch.next({ timeoutMs: 1000 })).event, 'STOP');
      await assert.rejects(watch.next({ timeoutMs: 50 }), TimeoutError);
      watch.close();
      off();
    });

    it('rejects an unknown command with QmpCommandError and stays usable', async () => {
      const { qmp } = await connectQemu();
      const error = await qmp.execute('no-such-command').then(
        () => assert.fail('resolved'),
        (e: unknown) => e,
      );
      assert.ok(error instanceof QmpCommandError, String(error));
      assert.equal(error.errorClass, 'CommandNotFound');
      assert.match(error.desc, /no-such-command/);
      assert.equal(error.command, 'no-such-command');
      assert.equal(error.exit, 'guestFailed');
      assert.equal((await qmp.queryStatus()).status, 'prelaunch');
    });

    it('rejects bad arguments with the class QEMU gives', async () => {
      const { qmp } = await connectQemu();
      await assert.rejects(qmp.execute('query-status', { bogus: 1 }), (e: unknown) => e instanceof QmpCommandError && e.errorClass === 'GenericError');
    });

    it('emits SHUTDOWN on quit, resolves quit, then closes and rejects new commands', async () => {
      const { qmp, child } = await connectQemu();
      const shutdown = qmp.watch('SHUTDOWN');
      const exited = once(child, 'exit');
      await qmp.quit();
      const event = await shutdown.next({ timeoutMs: 5000 });
      assert.equal(event.data['reason'], 'host-qmp-quit');
      const closedWith = await qmp.closed;
      assert.ok(closedWith instanceof QmpClosedError);
      assert.equal(qmp.isClosed, true);
      await assert.rejects(qmp.queryStatus(), QmpClosedError);
      // Nothing is left to collect, so a watch now reports the close rather than timing out.
      await assert.rejects(shutdown.next({ timeoutMs: 5000 }), QmpClosedError);
      const [code] = await exited;
      assert.equal(code, 0);
    });

    it('rejects a pending command with QmpClosedError when QEMU dies', async () => {
      const { qmp, child } = await connectQemu();
      // Frozen, QEMU cannot answer, so the command is surely pending when it dies.
      child.kill('SIGSTOP');
      const pending = qmp.queryStatus({ timeoutMs: 10_000 });
      await new Promise((resolve) => setTimeout(resolve, 50));
      child.kill('SIGKILL');
      await assert.rejects(pending, QmpClosedError);
      await qmp.closed;
    });

    it('times out a command QEMU does not answer, then drops the late reply and stays usable', async () => {
      const { qmp, child } = await connectQemu();
      child.kill('SIGSTOP');
      const started = Date.now();
      await assert.rejects(qmp.execute('query-name', undefined, { timeoutMs: 200 }), TimeoutError);
      assert.ok(Date.now() - started < 2000);
      child.kill('SIGCONT');
      // The late query-name reply arrives first and must not be taken for this one.
      assert.equal((await qmp.queryStatus()).status, 'prelaunch');
      assert.equal(qmp.isClosed, false);
    });

    it('close() ends the stream and rejects later commands', async () => {
      const { qmp } = await connectQemu();
      await qmp.close();
      assert.equal(qmp.isClosed, true);
      const reason = await qmp.closed;
      assert.match(reason.message, /closed by pocketvm/);
      await assert.rejects(qmp.queryStatus(), QmpClosedError);
    });
  });

  describe('protocol handling (scripted peer)', () => {
    it('reassembles lines split anywhere, including inside a UTF-8 sequence', async () => {
      const { qmp, peer } = await connectFake();
      const events: QmpEvent[] = [];
      qmp.onEvent((event) => events.push(event));
      const line = Buffer.from('{"event": "X", "data": {"name": "café ☕"}, "timestamp": {"seconds": 1, "microseconds": 2}}\n', 'utf8');
      const split = line.indexOf(Buffer.from('☕')) + 1; // inside the 3-byte sequence
      peer.write(line.subarray(0, 5));
      peer.write(line.subarray(5, split));
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(events.length, 0);
      peer.write(line.subarray(split));
      const watch = qmp.watch('Y');
      peer.write('{"event": "Y", "data": {}, "timestamp": {"seconds": 3, "microseconds": 4}}\r\n');
      await watch.next({ timeoutMs: 1000 });
      assert.equal(events.length, 2);
      assert.deepEqual(events[0]?.data, { name: 'café ☕' });
      assert.deepEqual(events[0]?.timestamp, { seconds: 1, microseconds: 2 });
    });

    it('matches replies by id even when they come out of order', async () => {
      const { qmp, peer, nextRequest } = await connectFake();
      const first = qmp.execute('first');
      const second = qmp.execute('second');
      const a = await nextRequest();
      const b = await nextRequest();
      peer.write(`{"return": "for-second", "id": ${JSON.stringify(b['id'])}}\n{"return": "for-first", "id": ${JSON.stringify(a['id'])}}\n`);
      assert.equal(await first, 'for-first');
      assert.equal(await second, 'for-second');
      assert.notEqual(a['id'], b['id']);
    });

    it('passes arguments and times out per command without breaking the client', async () => {
      const { qmp, peer, nextRequest } = await connectFake();
      const slow = qmp.execute('slow', { a: 1 }, { timeoutMs: 100 });
      const request = await nextRequest();
      assert.deepEqual(request['arguments'], { a: 1 });
      await assert.rejects(slow, (e: unknown) => e instanceof TimeoutError && /QMP command slow/.test(e.message));
      peer.write(`{"return": "late", "id": ${JSON.stringify(request['id'])}}\n`);
      const fast = qmp.execute('fast');
      const fastRequest = await nextRequest();
      peer.write(`{"return": "ok", "id": ${JSON.stringify(fastRequest['id'])}}\n`);
      assert.equal(await fast, 'ok');
    });

    it('uses the default command timeout given at connect', async () => {
      const { qmp } = await connectFake({ commandTimeoutMs: 80 });
      await assert.rejects(qmp.execute('never'), TimeoutError);
    });

    it('closes with a protocol error on invalid JSON and rejects what is pending', async () => {
      const { qmp, peer } = await connectFake();
      const pending = qmp.execute('anything');
      peer.write('{"return": oops}\n');
      await assert.rejects(pending, (e: unknown) => e instanceof QmpClosedError && e.cause instanceof QmpProtocolError);
      const reason = await qmp.closed;
      assert.match(reason.message, /invalid JSON/);
      await assert.rejects(qmp.execute('more'), QmpClosedError);
    });

    it('closes with a protocol error when a line exceeds the limit instead of buffering it', async () => {
      const { qmp, peer } = await connectFake({ maxLineBytes: 1024 });
      const pending = qmp.execute('anything');
      peer.write(`{"event": "BIG", "data": {"x": "${'a'.repeat(600)}`);
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(qmp.isClosed, false);
      peer.write('a'.repeat(600));
      await assert.rejects(pending, (e: unknown) => e instanceof QmpClosedError && /longer than 1024 bytes/.test(e.message));
    });

    it('rejects a greeting that is not QMP, and times out on silence', async () => {
      const bad = fakeChannel();
      bad.peer.write('{"hello": 1}\n');
      await assert.rejects(QmpClient.connect(bad.client, { timeoutMs: 1000 }), QmpProtocolError);
      assert.equal(bad.client.destroyed, true);

      const silent = fakeChannel();
      await assert.rejects(QmpClient.connect(silent.client, { timeoutMs: 100 }), TimeoutError);
    });

    it('fails connect when the peer hangs up before greeting', async () => {
      const channel = fakeChannel();
      channel.peer.end();
      await assert.rejects(QmpClient.connect(channel.client, { timeoutMs: 2000 }), QmpClosedError);
    });

    it('treats a close right after quit as success, but refuses quit on a closed client', async () => {
      const { qmp, peer, nextRequest } = await connectFake();
      const quitting = qmp.quit();
      assert.equal((await nextRequest())['execute'], 'quit');
      peer.end();
      await quitting;
      await qmp.closed;
      await assert.rejects(qmp.quit(), QmpClosedError);
    });

    it('still reports a command error for quit', async () => {
      const { qmp, peer, nextRequest } = await connectFake();
      const quitting = qmp.quit();
      const request = await nextRequest();
      peer.write(`{"error": {"class": "GenericError", "desc": "no"}, "id": ${JSON.stringify(request['id'])}}\n`);
      await assert.rejects(quitting, QmpCommandError);
    });

    it('gives an id-less reply to the oldest command in flight', async () => {
      const { qmp, peer, nextRequest } = await connectFake();
      const first = qmp.execute('first');
      await nextRequest();
      peer.write('{"error": {"class": "GenericError", "desc": "JSON parse error"}}\n');
      await assert.rejects(first, (e: unknown) => e instanceof QmpCommandError && e.desc === 'JSON parse error');
    });

    it('aborts a command and a wait through an AbortSignal', async () => {
      const { qmp } = await connectFake();
      const controller = new AbortController();
      const command = qmp.execute('never', undefined, { signal: controller.signal });
      const waiting = qmp.waitForEvent('NEVER', { timeoutMs: 5000, signal: controller.signal });
      controller.abort(new Error('user pressed ctrl-c'));
      await assert.rejects(command, /ctrl-c/);
      await assert.rejects(waiting, /ctrl-c/);
    });
  });
});
