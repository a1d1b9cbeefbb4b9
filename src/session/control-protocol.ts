// The session's control protocol: how `launcher exec|status|stop` reach a
// running session. One JSON request per connection, one JSON response, over a
// UNIX socket in a private (0700) runtime directory, or a Windows named pipe
// with an unguessable name. Every request carries the session's token.
import type { ShutdownResult } from '../vmm/shutdown-ladder.ts';
import type { GuestFacts } from './guest-facts.ts';
import type { SessionStatus } from './session.ts';
import type { SuspendResult } from './suspend.ts';

export type ControlRequest =
  | { op: 'status'; token: string }
  | { op: 'facts'; token: string }
  | { op: 'exec'; token: string; path: string; args: string[]; timeoutMs: number; input?: string; /** as root instead of the session's user */ root?: boolean }
  | { op: 'stop'; token: string; force: boolean }
  /** Save the guest's state to the stick and end the session (launcher eject --suspend). */
  | { op: 'suspend'; token: string };

export interface ExecResult {
  exitCode: number;
  signal: number | null;
  stdout: string;
  stderr: string;
}

export interface ControlResults {
  status: SessionStatus;
  facts: GuestFacts;
  exec: ExecResult;
  stop: ShutdownResult;
  suspend: SuspendResult;
}

export type ControlResponse<T> = { ok: true; result: T } | { ok: false; error: { exit: string; message: string; hint?: string } };

/** Requests are small; anything bigger is not ours. */
export const MAX_REQUEST_BYTES = 1 << 20;
