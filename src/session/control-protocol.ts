// The session's control protocol: how `launcher exec|status|stop` reach a
// running session. One JSON request per connection, one JSON response (an
// exec-stream request is answered by a JSON line, then exec frames), over a
// UNIX socket in a private (0700) runtime directory, or a Windows named pipe
// with an unguessable name. Every request carries the session's token.
import type { ShutdownResult } from '../vmm/shutdown-ladder.ts';
import type { GuestFacts } from './guest-facts.ts';
import type { SessionStatus } from './session.ts';
import type { SuspendResult } from './suspend.ts';

export type ControlRequest =
  | { op: 'status'; token: string }
  | { op: 'facts'; token: string }
  /** Then exec frames both ways (src/session/exec-relay.ts): stdin and signals in, output and exit status out. */
  | ExecRequest
  | { op: 'stop'; token: string; force: boolean }
  /** Save the guest's state to the stick and end the session (launcher eject --suspend). */
  | { op: 'suspend'; token: string }
  /** `guest boot` of a ready guest (src/guests/ready-gate.ts): answered once it runs. */
  | { op: 'boot'; token: string }
  /** `guest reboot`: the guest restarts in the same session (src/session/guest-reboot.ts). */
  | { op: 'reboot'; token: string }
  /** `launcher console`: then raw console bytes both ways (src/session/console-relay.ts). */
  | { op: 'console-stream'; token: string };

export interface ExecRequest {
  op: 'exec-stream';
  token: string;
  path: string;
  args: string[];
  /** As root instead of the session's user. */
  root?: boolean;
}

export interface ControlResults {
  status: SessionStatus;
  facts: GuestFacts;
  'exec-stream': never;
  stop: ShutdownResult;
  suspend: SuspendResult;
  boot: SessionStatus;
  reboot: { ms: number };
  'console-stream': never;
}

export type ControlResponse<T> = { ok: true; result: T } | { ok: false; error: { exit: string; message: string; hint?: string } };

/** Requests are small; anything bigger is not ours. */
export const MAX_REQUEST_BYTES = 1 << 20;
