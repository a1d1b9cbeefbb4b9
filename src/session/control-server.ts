// Serves the control protocol for one session (see control-protocol.ts).
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { asPocketError, UsageError } from '../errors.ts';
import type { HostAdapter } from '../hostprobe/host-adapter.ts';
import type { ControlAddress } from '../stick/lock.ts';
import { type ControlRequest, type ControlResponse, MAX_REQUEST_BYTES } from './control-protocol.ts';
import { relayExec } from './exec-relay.ts';
import { relayConsole } from './console-relay.ts';
import type { Session } from './session.ts';

async function privateAddress(host: HostAdapter): Promise<ControlAddress> {
  return { ...(await host.controlEndpoint()), token: randomBytes(24).toString('hex') };
}

function tokenMatches(expected: string, given: unknown): boolean {
  if (typeof given !== 'string' || given.length !== expected.length) return false;
  return timingSafeEqual(Buffer.from(given), Buffer.from(expected));
}

async function handle(session: Session, request: ControlRequest): Promise<unknown> {
  switch (request.op) {
    case 'status':
      return session.status();
    case 'facts':
      return session.facts();
    case 'suspend':
      return session.suspend();
    case 'stop':
      return session.stop({ force: request.force });
    case 'reboot':
      return (await import('./guest-reboot.ts')).rebootGuest(session);
    case 'boot':
      // `guest boot` of a guest already running (a race with another launcher): it is what was asked.
      return session.status();
    default:
      throw new UsageError(`unknown control request ${(request as { op: unknown }).op as string}`);
  }
}

function serve(session: Session, address: ControlAddress, socket: Socket): void {
  let buffer = Buffer.alloc(0);
  const reply = (response: ControlResponse<unknown>) => socket.end(`${JSON.stringify(response)}\n`);
  socket.on('error', () => {});
  const onData = (chunk: Buffer) => {
    buffer = Buffer.concat([buffer, chunk]);
    if (buffer.length > MAX_REQUEST_BYTES) return void socket.destroy();
    const newline = buffer.indexOf(0x0a);
    if (newline < 0) return;
    socket.off('data', onData);
    let request: ControlRequest;
    try {
      request = JSON.parse(buffer.subarray(0, newline).toString('utf8')) as ControlRequest;
    } catch {
      return reply({ ok: false, error: { exit: 'usage', message: 'malformed control request' } });
    }
    if (!tokenMatches(address.token, request.token))
      return reply({ ok: false, error: { exit: 'usage', message: 'control request refused: wrong session token' } });
    // A streamed exec keeps the connection: what follows the line is its frames.
    if (request.op === 'exec-stream') return relayExec(session, request, socket, buffer.subarray(newline + 1));
    // `launcher console`: raw console bytes both ways (src/session/console-relay.ts).
    if (request.op === 'console-stream') return relayConsole(session.machine.console, socket, buffer.subarray(newline + 1));
    handle(session, request).then(
      (result) => reply({ ok: true, result }),
      (error: unknown) => {
        const failure = asPocketError(error);
        reply({ ok: false, error: { exit: failure.exit, message: failure.message, ...(failure.hint ? { hint: failure.hint } : {}) } });
      },
    );
  };
  socket.on('data', onData);
}

/** Starts serving; records the address in the stick lock; stops at teardown. */
export async function startControlServer(session: Session, host: HostAdapter): Promise<ControlAddress> {
  const address = await privateAddress(host);
  const server: Server = createServer((socket) => serve(session, address, socket));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(address.path, () => resolve());
  });
  server.unref();
  session.onTeardown(async () => {
    // Not awaited: close() waits for open connections, and the `stop` request
    // that caused this teardown is one of them, still owed its reply.
    server.close();
    if (address.privateDir) await rm(address.privateDir, { recursive: true, force: true });
  });
  await session.lock.update({ control: address });
  return address;
}
