// The session's side of a streamed `launcher exec` (control op exec-stream):
// after the request line the control connection carries exec frames
// (src/session/exec-frames.ts, id 0), stdin and signals from the launcher,
// output and the exit status back. The session relays them to the guest's
// pocketvm-execd, choosing who the command runs as.
import type { Socket } from 'node:net';
import { PocketError } from '../errors.ts';
import type { GuestManifest } from '../payload/guest-manifest.ts';
import type { ExecRequest } from './control-protocol.ts';
import { encodeFrame, type ExecSpec, FrameReader } from './exec-frames.ts';
import { GUEST_USER_ID } from './personal-disk.ts';
import type { Session } from './session.ts';

const PATH = '/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin';

/**
 * The session's user with HOME (their personal disk) as working directory, or
 * root; `guestEnv` is what the guest's manifest adds (execEnv: the desktop's
 * DISPLAY and XAUTHORITY, so `exec -- xclip -o` reaches the person's screen).
 */
export function execSpec(user: string | undefined, request: Pick<ExecRequest, 'path' | 'args' | 'root'>, guestEnv: Record<string, string> = {}): ExecSpec {
  const argv = [request.path, ...request.args];
  if (!user || request.root)
    return { uid: 0, gid: 0, cwd: '/root', argv, env: { ...guestEnv, HOME: '/root', USER: 'root', LOGNAME: 'root', PATH, SHELL: '/bin/sh' } };
  const home = `/home/${user}`;
  return { uid: GUEST_USER_ID, gid: GUEST_USER_ID, cwd: home, argv, env: { ...guestEnv, HOME: home, USER: user, LOGNAME: user, PATH, SHELL: '/bin/sh' } };
}

/** What relays a command: a session (its guest's manifest may add to the environment) or the appliance. */
type ExecTarget = Pick<Session, 'execs' | 'user'> & { readonly payload?: { readonly manifest: Pick<GuestManifest, 'execEnv'> } };

/** Relays one command; the connection closes after its exit (or failure) frame. */
export function relayExec(session: ExecTarget, request: ExecRequest, socket: Socket, leftover: Buffer): void {
  const execs = session.execs;
  const reply = (response: unknown) => socket.write(`${JSON.stringify(response)}\n`);
  if (!execs) {
    reply({ ok: false, error: { exit: 'guestFailed', message: 'this session cannot run commands (no exec channel)' } });
    return void socket.end();
  }
  let handle;
  try {
    handle = execs.start(execSpec(session.user, request, session.payload?.manifest.execEnv), {
      onFrame: (frame) => {
        if (frame.type === 'A') return;
        socket.write(encodeFrame(frame.type, 0, frame.payload));
        if (frame.type === 'X' || frame.type === 'F') socket.end();
      },
      onWritable: () => socket.resume(),
    });
  } catch (error) {
    const failure = error instanceof PocketError ? error : new PocketError('guestFailed', String(error));
    reply({ ok: false, error: { exit: failure.exit, message: failure.message } });
    return void socket.end();
  }
  reply({ ok: true });
  const started = handle;
  const reader = new FrameReader();
  const onData = (chunk: Buffer) => {
    let frames;
    try {
      frames = reader.push(chunk);
    } catch {
      return void socket.destroy();
    }
    for (const frame of frames) {
      if (frame.type === 'I') {
        if (frame.payload.length === 0) started.end();
        // The guest has a window of stdin unwritten: the launcher waits for it to drain.
        else if (!started.write(frame.payload)) socket.pause();
      } else if (frame.type === 'K' && frame.payload.length === 4) {
        started.signal(frame.payload.readUInt32LE(0));
      }
    }
  };
  socket.on('data', onData);
  // The launcher went away (killed, or its terminal closed) before the end:
  // the command is hung up, as by a closing terminal.
  socket.on('close', () => {
    if (!started.ended) started.signal(1);
  });
  if (leftover.length > 0) onData(leftover);
}
