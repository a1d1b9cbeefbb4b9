// Test tier: integration (starts QEMU and qemu-ga).
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { duplexPair, type Duplex } from 'node:stream';
import { TimeoutError } from '../../src/errors.ts';
import { QmpClient } from '../../src/vmm/qmp-client.ts';
import { GuestAgentClient, GuestAgentClosedError, GuestAgentError, GuestAgentProtocolError } from '../../src/vmm/guest-agent-client.ts';
import { bareQemuArgs, QEMU } from './bare-qemu.ts';

type Request = { execute: string; arguments?: Record<string, unknown>; id?: unknown };
type Handler = (request: Request, agent: FakeAgent) => void;

/**
 * An in-process peer that speaks qemu-ga's documented protocol: a 0xFF byte
 * resets its parser, guest-sync-delimited is answered with 0xFF + the reply,
 * other commands go to `handlers` (a missing handler means "never answer").
 */
class FakeAgent {
  readonly client: Duplex;
  readonly peer: Duplex;
  readonly requests: Request[] = [];
  /** Raw bytes of every write from the client, to check framing. */
  readonly raw: Buffer[] = [];
  handlers = new Map<string, Handler>();
  /** Sync requests to ignore, as an agent that is not up yet would. */
  dropSyncs = 0;
  #buffer = '';
  #listeners: Array<() => void> = [];

  constructor() {
    [this.client, this.peer] = duplexPair();
    this.peer.on('data', (chunk: Buffer) => this.#onData(chunk));
    this.handlers.set('guest-sync-delimited', (request, agent) => {
      if (agent.dropSyncs > 0) {
        agent.dropSyncs -= 1;
        return;
      }
      agent.send(Buffer.concat([Buffer.of(0xff), Buffer.from(`{"return": ${String(request.arguments?.['id'])}}\n`)]));
    });
    this.handlers.set('guest-ping', (request, agent) => agent.reply(request, {}));
  }

  send(data: string | Buffer): void {
    this.peer.write(data);
  }

  reply(request: Request, value: unknown): void {
    this.send(`${JSON.stringify({ return: value, ...(request.id === undefined ? {} : { id: request.id }) })}\n`);
  }

  fail(request: Request, errorClass: string, desc: string): void {
    this.send(`${JSON.stringify({ error: { class: errorClass, desc }, ...(request.id === undefined ? {} : { id: request.id }) })}\n`);
  }

  commands(): string[] {
    return this.requests.map((r) => r.execute);
  }

  /** Resolves once `count` requests in all have arrived. */
  async waitForRequests(count: number): Promise<void> {
    while (this.requests.length < count) await new Promise<void>((resolve) => this.#listeners.push(resolve));
  }

  #onData(chunk: Buffer): void {
    this.raw.push(Buffer.from(chunk));
    let text = chunk.toString('latin1');
    const flush = text.lastIndexOf('\xff');
    if (flush !== -1) {
      this.#buffer = '';
      text = text.slice(flush + 1);
    }
    this.#buffer += text;
    let newline: number;
    while ((newline = this.#buffer.indexOf('\n')) !== -1) {
      const line = Buffer.from(this.#buffer.slice(0, newline), 'latin1').toString('utf8');
      this.#buffer = this.#buffer.slice(newline + 1);
      const request = JSON.parse(line) as Request;
      this.requests.push(request);
      this.handlers.get(request.execute)?.(request, this);
    }
    for (const listener of this.#listeners.splice(0)) listener();
  }
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function findQemuGa(): string | undefined {
  for (const candidate of [process.env['POCKETVM_QEMU_GA'], '/usr/sbin/qemu-ga', '/usr/bin/qemu-ga']) {
    if (candidate !== undefined && existsSync(candidate)) return candidate;
  }
  return undefined;
}

describe('GuestAgentClient', function () {
  this.timeout(15_000);

  describe('against the host qemu-ga (unix-listen)', () => {
    const binary = findQemuGa();
    let dir: string;
    let agent: ChildProcess | undefined;
    let socket: Socket | undefined;
    let client: GuestAgentClient;

    beforeEach(async function () {
      assert.ok(binary !== undefined, 'qemu-ga is needed (apt-get install qemu-guest-agent; .ci/run installs it)');
      dir = await mkdtemp(join(tmpdir(), 'pocketvm-qga-'));
      const path = join(dir, 'qga.sock');
      // Block what could disturb the host running the tests.
      const blocked = [
        'guest-shutdown',
        'guest-suspend-disk',
        'guest-suspend-ram',
        'guest-suspend-hybrid',
        'guest-set-time',
        'guest-fsfreeze-freeze',
        'guest-fsfreeze-freeze-list',
        'guest-fstrim',
        'guest-set-user-password',
        'guest-set-vcpus',
        'guest-set-memory-blocks',
      ];
      agent = spawn(binary!, ['-m', 'unix-listen', '-p', path, '-t', dir, '-f', join(dir, 'qga.pid'), '-b', blocked.join(',')], {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      agent.stderr?.setEncoding('utf8').on('data', (text: string) => (stderr += text));
      for (let attempt = 0; ; attempt++) {
        try {
          socket = await new Promise<Socket>((resolve, reject) => {
            const s = connect(path);
            s.once('connect', () => resolve(s));
            s.once('error', reject);
          });
          break;
        } catch (error) {
          if (attempt > 200 || agent.exitCode !== null) throw new Error(`qemu-ga did not listen: ${String(error)}\n${stderr}`);
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
      }
      client = new GuestAgentClient(socket);
    });

    afterEach(async () => {
      socket?.destroy();
      socket = undefined;
      if (agent !== undefined && agent.exitCode === null && agent.signalCode === null) {
        agent.kill('SIGKILL');
        await once(agent, 'exit');
      }
      agent = undefined;
      if (dir !== undefined) await rm(dir, { recursive: true, force: true });
    });

    it('becomes ready, pings, and reports info, OS and vCPUs', async () => {
      await client.waitUntilReady({ timeoutMs: 5000 });
      await client.ping();
      const info = await client.info();
      assert.match(info.version, /^\d+\.\d+/);
      const shutdown = info.supported_commands.find((c) => c.name === 'guest-shutdown');
      assert.deepEqual(shutdown && { enabled: shutdown.enabled, response: shutdown['success-response'] }, { enabled: false, response: false });
      const os = await client.osInfo();
      assert.equal(typeof os['kernel-release'], 'string');
      const vcpus = await client.vcpus();
      assert.ok(vcpus.length >= 1);
      assert.equal(typeof vcpus[0]?.['logical-id'], 'number');
    });

    it('syncs even after a half-sent request left junk in the agent parser', async () => {
      socket!.write('{"execute": "guest-ping", "argu');
      await client.sync({ timeoutMs: 3000 });
      await client.ping();
    });

    it('runs /bin/echo and a shell with stdin, stderr and an exit code', async () => {
      const echo = await client.run('/bin/echo', ['hello', 'wörld'], { timeoutMs: 5000 });
      assert.deepEqual(echo, { exitCode: 0, signal: null, stdout: Buffer.from('hello wörld\n'), stderr: Buffer.alloc(0), truncated: false });

      const shell = await client.run('/bin/sh', ['-c', 'cat; echo "$FOO" >&2; exit 3'], {
        timeoutMs: 5000,
        inputData: Buffer.of(0, 1, 0xff, 0x0a),
        env: { FOO: 'bar' },
      });
      assert.equal(shell.exitCode, 3);
      assert.deepEqual(shell.stdout, Buffer.of(0, 1, 0xff, 0x0a));
      assert.equal(shell.stderr.toString(), 'bar\n');
    });

    it('reports a process killed by a signal', async () => {
      const result = await client.run('/bin/sh', ['-c', 'kill -9 $$'], { timeoutMs: 5000 });
      assert.equal(result.exitCode, null);
      assert.equal(result.signal, 9);
    });

    it('maps agent errors to GuestAgentError', async () => {
      await assert.rejects(client.execute('guest-no-such-thing'), (e: unknown) => e instanceof GuestAgentError && e.errorClass === 'CommandNotFound');
      await assert.rejects(client.execStatus(999_999_999), (e: unknown) => e instanceof GuestAgentError && e.errorClass === 'GenericError');
      // Still in step afterwards.
      await client.ping();
    });
  });

  describe('over a real QEMU virtio-serial channel with no guest', () => {
    let qemu: ChildProcess | undefined;

    afterEach(async () => {
      if (qemu !== undefined && qemu.exitCode === null && qemu.signalCode === null) {
        qemu.kill('SIGKILL');
        await once(qemu, 'exit');
      }
      qemu = undefined;
    });

    it('times out waiting for an agent that is not there, and reports QEMU exiting as closed', async () => {
      qemu = spawn(
        QEMU,
        bareQemuArgs(
          'q35',
          '-chardev',
          'socket,id=qga,fd=4',
          '-device',
          'virtio-serial-pci',
          '-device',
          'virtserialport,chardev=qga,name=org.qemu.guest_agent.0',
        ),
        { stdio: ['ignore', 'ignore', 'ignore', 'pipe', 'pipe'] },
      );
      const qmp = await QmpClient.connect(qemu.stdio[3] as Duplex);
      const client = new GuestAgentClient(qemu.stdio[4] as Duplex);
      await assert.rejects(client.waitUntilReady({ timeoutMs: 400, attemptTimeoutMs: 100 }), TimeoutError);
      const pending = client.ping({ timeoutMs: 10_000 });
      await qmp.quit();
      await assert.rejects(pending, GuestAgentClosedError);
      assert.ok((await client.closed) instanceof GuestAgentClosedError);
    });
  });

  describe('protocol handling (scripted agent)', () => {
    it('sends 0xFF before the sync request and discards everything before the reply sentinel', async () => {
      const agent = new FakeAgent();
      agent.handlers.set('guest-sync-delimited', (request, a) => {
        // Stale replies, half a line, and a lookalike carrying our id but no sentinel.
        a.send('{"return": {"pid": 7}}\n{"return": ');
        a.send(`${String(request.arguments?.['id'])}}\n{"error": {"class": "GenericError", "desc": "stray"}}\n{"ret`);
      });
      const client = new GuestAgentClient(agent.client);
      let synced = false;
      const syncing = client.sync({ timeoutMs: 1000 }).then(() => (synced = true));
      await agent.waitForRequests(1);
      await tick();
      await tick();
      assert.equal(synced, false, 'data before the sentinel must be discarded');
      agent.send(Buffer.concat([Buffer.of(0xff), Buffer.from(`{"return": ${String(agent.requests[0]?.arguments?.['id'])}}\n`)]));
      await syncing;
      assert.equal(agent.raw[0]?.[0], 0xff);
      assert.equal(agent.commands()[0], 'guest-sync-delimited');
      const id = agent.requests[0]?.arguments?.['id'];
      assert.ok(Number.isSafeInteger(id) && (id as number) > 0, `sync id ${String(id)}`);
      await client.ping({ timeoutMs: 1000 });
      assert.deepEqual(agent.commands(), ['guest-sync-delimited', 'guest-ping']);
    });

    it('ignores a sync reply with a stale id and uses a fresh id each time', async () => {
      const agent = new FakeAgent();
      agent.handlers.delete('guest-sync-delimited');
      const client = new GuestAgentClient(agent.client);
      const syncing = client.sync({ timeoutMs: 2000 });
      await agent.waitForRequests(1);
      const id = agent.requests[0]?.arguments?.['id'] as number;
      let done = false;
      void syncing.then(() => (done = true));
      agent.send(Buffer.concat([Buffer.of(0xff), Buffer.from(`{"return": ${id + 1}}\n`)]));
      await tick();
      await tick();
      assert.equal(done, false, 'a reply with another id must not complete the sync');
      agent.send(Buffer.concat([Buffer.of(0xff), Buffer.from(`{"return": ${id}}\n`)]));
      await syncing;
      const second = client.sync({ timeoutMs: 2000 });
      await agent.waitForRequests(2);
      const id2 = agent.requests[1]?.arguments?.['id'] as number;
      assert.notEqual(id2, id);
      agent.send(Buffer.concat([Buffer.of(0xff), Buffer.from(`{"return": ${id2}}\n`)]));
      await second;
    });

    it('syncs before the first command without being asked', async () => {
      const agent = new FakeAgent();
      const client = new GuestAgentClient(agent.client);
      await client.ping({ timeoutMs: 1000 });
      await client.ping({ timeoutMs: 1000 });
      assert.deepEqual(agent.commands(), ['guest-sync-delimited', 'guest-ping', 'guest-ping']);
    });

    it('waitUntilReady retries sync until the agent answers, then pings', async () => {
      const agent = new FakeAgent();
      agent.dropSyncs = 2;
      const client = new GuestAgentClient(agent.client);
      await client.waitUntilReady({ timeoutMs: 3000, attemptTimeoutMs: 50 });
      assert.deepEqual(agent.commands(), ['guest-sync-delimited', 'guest-sync-delimited', 'guest-sync-delimited', 'guest-ping']);
    });

    it('waitUntilReady gives up after its timeout, or when aborted', async () => {
      const agent = new FakeAgent();
      agent.dropSyncs = Infinity;
      const client = new GuestAgentClient(agent.client);
      const started = Date.now();
      await assert.rejects(
        client.waitUntilReady({ timeoutMs: 300, attemptTimeoutMs: 50 }),
        (e: unknown) => e instanceof TimeoutError && /guest agent to answer/.test(e.message),
      );
      const elapsed = Date.now() - started;
      assert.ok(elapsed >= 290 && elapsed < 1000, `took ${elapsed} ms`);
      assert.ok(agent.commands().length >= 3, `only ${agent.commands().length} attempts`);

      const controller = new AbortController();
      const waiting = client.waitUntilReady({ timeoutMs: 5000, attemptTimeoutMs: 50, signal: controller.signal });
      setTimeout(() => controller.abort(new Error('stick removed')), 120);
      await assert.rejects(waiting, /stick removed/);
    });

    it('resyncs after a timeout and does not take the late reply for the next command', async () => {
      const agent = new FakeAgent();
      let slow: Request | undefined;
      agent.handlers.set('guest-info', (request) => (slow = request));
      const client = new GuestAgentClient(agent.client);
      await assert.rejects(client.info({ timeoutMs: 100 }), TimeoutError);
      assert.ok(slow);
      agent.reply(slow, { version: 'late', supported_commands: [] });
      agent.handlers.set('guest-get-vcpus', (request, a) => a.reply(request, [{ 'logical-id': 0, online: true }]));
      assert.deepEqual(await client.vcpus({ timeoutMs: 1000 }), [{ 'logical-id': 0, online: true }]);
      assert.deepEqual(agent.commands(), ['guest-sync-delimited', 'guest-info', 'guest-sync-delimited', 'guest-get-vcpus']);
    });

    it('accepts replies from agents that do not echo ids, and skips replies with a foreign id', async () => {
      const agent = new FakeAgent();
      agent.handlers.set('guest-get-osinfo', (request, a) => {
        a.send(`{"return": {"id": "wrong"}, "id": "someone-else"}\n`);
        // Split inside the two-byte "é".
        const line = Buffer.from('{"return": {"pretty-name": "Débian"}}\n');
        const cut = line.indexOf(0xc3) + 1;
        a.send(line.subarray(0, cut));
        setImmediate(() => a.send(line.subarray(cut)));
        void request;
      });
      const client = new GuestAgentClient(agent.client);
      assert.deepEqual(await client.osInfo({ timeoutMs: 1000 }), { 'pretty-name': 'Débian' });
    });

    it('encodes exec arguments and decodes base64 output from exec-status', async () => {
      const agent = new FakeAgent();
      agent.handlers.set('guest-exec', (request, a) => a.reply(request, { pid: 42 }));
      agent.handlers.set('guest-exec-status', (request, a) =>
        a.reply(request, {
          exited: true,
          exitcode: 0,
          'out-data': Buffer.from('héllo\n').toString('base64'),
          'err-data': Buffer.of(0xff, 0).toString('base64'),
          'out-truncated': false,
          'err-truncated': true,
        }),
      );
      const client = new GuestAgentClient(agent.client);
      const pid = await client.exec('/bin/tool', ['a', 'b c'], { env: { A: '1', PATH: '/bin' }, inputData: 'in\n' });
      assert.equal(pid, 42);
      assert.deepEqual(agent.requests.at(-1)?.arguments, {
        path: '/bin/tool',
        arg: ['a', 'b c'],
        env: ['A=1', 'PATH=/bin'],
        'input-data': Buffer.from('in\n').toString('base64'),
        'capture-output': true,
      });
      assert.deepEqual(await client.execStatus(42), {
        exited: true,
        exitCode: 0,
        stdout: Buffer.from('héllo\n'),
        stderr: Buffer.of(0xff, 0),
        truncated: true,
      });
      assert.deepEqual(agent.requests.at(-1)?.arguments, { pid: 42 });
    });

    it('run polls exec-status until the process exits', async () => {
      const agent = new FakeAgent();
      let polls = 0;
      agent.handlers.set('guest-exec', (request, a) => a.reply(request, { pid: 5 }));
      agent.handlers.set('guest-exec-status', (request, a) => {
        polls += 1;
        a.reply(request, polls < 3 ? { exited: false } : { exited: true, signal: 15 });
      });
      const client = new GuestAgentClient(agent.client);
      const result = await client.run('/bin/sleep', ['1'], { timeoutMs: 2000, pollMs: 5 });
      assert.equal(polls, 3);
      assert.deepEqual(result, { exitCode: null, signal: 15, stdout: Buffer.alloc(0), stderr: Buffer.alloc(0), truncated: false });
    });

    it('run times out when the process never exits', async () => {
      const agent = new FakeAgent();
      agent.handlers.set('guest-exec', (request, a) => a.reply(request, { pid: 5 }));
      agent.handlers.set('guest-exec-status', (request, a) => a.reply(request, { exited: false }));
      const client = new GuestAgentClient(agent.client);
      await assert.rejects(
        client.run('/bin/forever', [], { timeoutMs: 150, pollMs: 10 }),
        (e: unknown) => e instanceof TimeoutError && /guest command \/bin\/forever/.test(e.message),
      );
    });

    it('maps an error reply to GuestAgentError', async () => {
      const agent = new FakeAgent();
      agent.handlers.set('guest-exec', (request, a) => a.fail(request, 'GenericError', 'Failed to execute child process “/nope” (No such file or directory)'));
      const client = new GuestAgentClient(agent.client);
      const error = await client.exec('/nope').then(
        () => assert.fail('resolved'),
        (e: unknown) => e,
      );
      assert.ok(error instanceof GuestAgentError);
      assert.equal(error.errorClass, 'GenericError');
      assert.match(error.desc, /No such file/);
      assert.equal(error.command, 'guest-exec');
    });

    it('runs one command at a time', async () => {
      const agent = new FakeAgent();
      let inFlight = 0;
      let maxInFlight = 0;
      const delayed: Handler = (request, a) => {
        inFlight += 1;
        maxInFlight = Math.max(maxInFlight, inFlight);
        setTimeout(() => {
          inFlight -= 1;
          a.reply(request, request.execute === 'guest-get-vcpus' ? [] : {});
        }, 10);
      };
      agent.handlers.set('guest-ping', delayed);
      agent.handlers.set('guest-get-vcpus', delayed);
      const client = new GuestAgentClient(agent.client);
      await Promise.all([client.ping(), client.vcpus(), client.ping(), client.vcpus()]);
      assert.equal(maxInFlight, 1);
      assert.equal(agent.commands().filter((c) => c !== 'guest-sync-delimited').length, 4);
    });

    it('shutdown resolves when no reply comes, and sends the mode', async () => {
      const agent = new FakeAgent();
      const client = new GuestAgentClient(agent.client);
      await client.sync();
      const started = Date.now();
      await client.shutdown('reboot', { graceMs: 100 });
      assert.ok(Date.now() - started >= 90);
      assert.deepEqual(agent.requests.at(-1), { execute: 'guest-shutdown', arguments: { mode: 'reboot' }, id: agent.requests.at(-1)?.id });
      // The next command resyncs: whatever the agent sends about the shutdown is stale.
      await client.ping();
      assert.deepEqual(agent.commands().slice(-2), ['guest-sync-delimited', 'guest-ping']);
    });

    it('shutdown treats the channel closing as success, and an error reply as failure', async () => {
      const closing = new FakeAgent();
      closing.handlers.set('guest-shutdown', (_request, a) => a.peer.end());
      const client = new GuestAgentClient(closing.client);
      await client.shutdown(undefined, { graceMs: 5000 });
      assert.equal(closing.requests.at(-1)?.arguments?.['mode'], 'powerdown');
      await client.closed;

      const refusing = new FakeAgent();
      refusing.handlers.set('guest-shutdown', (request, a) =>
        a.fail(request, 'CommandNotFound', 'The command guest-shutdown has been disabled for this instance'),
      );
      await assert.rejects(new GuestAgentClient(refusing.client).shutdown('halt', { graceMs: 5000 }), GuestAgentError);
    });

    it('rejects junk in place of a reply, then resyncs', async () => {
      const agent = new FakeAgent();
      agent.handlers.set('guest-info', (_request, a) => a.send('not json at all\n'));
      const client = new GuestAgentClient(agent.client);
      await assert.rejects(client.info({ timeoutMs: 1000 }), GuestAgentProtocolError);
      await client.ping({ timeoutMs: 1000 });
      assert.deepEqual(agent.commands().slice(-2), ['guest-sync-delimited', 'guest-ping']);
    });

    it('bounds the reply buffer instead of growing without a newline', async () => {
      const agent = new FakeAgent();
      agent.handlers.set('guest-info', (_request, a) => {
        a.send(`{"return": "${'x'.repeat(3000)}`);
      });
      const client = new GuestAgentClient(agent.client, { maxLineBytes: 1024 });
      await assert.rejects(client.info({ timeoutMs: 1000 }), (e: unknown) => e instanceof GuestAgentProtocolError && /longer than 1024/.test(e.message));
      // The rest of the over-long line is dropped until the next sentinel.
      agent.send(`${'y'.repeat(5000)}"}\n`);
      await client.ping({ timeoutMs: 1000 });
    });

    it('rejects what is pending when the channel closes, and everything after', async () => {
      const agent = new FakeAgent();
      agent.handlers.set('guest-info', (_request, a) => a.peer.end());
      const client = new GuestAgentClient(agent.client);
      const queued = client.ping();
      await assert.rejects(client.info(), GuestAgentClosedError);
      await assert.doesNotReject(queued);
      await assert.rejects(client.ping(), GuestAgentClosedError);
      const reason = await client.closed;
      assert.match(reason.message, /QEMU closed the channel/);
      assert.equal(client.isClosed, true);
    });

    it('close() ends the stream and rejects later calls', async () => {
      const agent = new FakeAgent();
      const client = new GuestAgentClient(agent.client);
      const peerEnded = once(agent.peer, 'end');
      await client.close({ graceMs: 50 });
      await peerEnded;
      await assert.rejects(client.ping(), (e: unknown) => e instanceof GuestAgentClosedError && /closed by pocketvm/.test(e.message));
    });
  });
});
