// Reaches a running session through the address its lock records.
import { connect } from 'node:net';
import { ExitCode, type ExitCodeName, NoSessionError, PocketError, TimeoutError } from '../errors.ts';
import type { StickLayout } from '../stick/layout.ts';
import { isStale, type LockHolder, readLock } from '../stick/lock.ts';
import type { ControlRequest, ControlResponse, ControlResults } from './control-protocol.ts';

type Op = ControlRequest['op'];
type Body<K extends Op> = Omit<Extract<ControlRequest, { op: K }>, 'op' | 'token'>;

export async function findSession(layout: StickLayout): Promise<LockHolder & { control: NonNullable<LockHolder['control']> }> {
  const holder = await readLock(layout);
  if (!holder || isStale(holder) || !holder.control) throw new NoSessionError(layout.root);
  return holder as LockHolder & { control: NonNullable<LockHolder['control']> };
}

/** Longer than the slowest answer the session gives: a full shutdown ladder. */
const DEFAULT_CONTROL_TIMEOUT_MS = 120_000;

export async function sendControl<K extends Op>(layout: StickLayout, op: K, body: Body<K>, options: { timeoutMs?: number } = {}): Promise<ControlResults[K]> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_CONTROL_TIMEOUT_MS;
  const holder = await findSession(layout);
  const request = { ...body, op, token: holder.control.token };
  const text = await new Promise<string>((resolve, reject) => {
    const socket = connect(holder.control.path);
    let data = '';
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(`${JSON.stringify(request)}\n`));
    socket.on('data', (chunk: string) => (data += chunk));
    socket.on('end', () => resolve(data));
    socket.setTimeout(timeoutMs, () => {
      socket.destroy();
      reject(new TimeoutError(`the session's answer to ${op}`, timeoutMs, 'the session may be stuck: launcher stop --force ends it'));
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT' || error.code === 'ECONNREFUSED') reject(new NoSessionError(layout.root));
      else reject(error);
    });
  });
  if (!text.trim())
    throw new PocketError('noSession', 'the session closed the control channel without answering', {
      hint: 'it is probably shutting down; check with: launcher status',
    });
  const response = JSON.parse(text) as ControlResponse<ControlResults[K]>;
  if (response.ok) return response.result;
  const exit = (response.error.exit in ExitCode ? response.error.exit : 'internal') as ExitCodeName;
  throw new PocketError(exit, response.error.message, response.error.hint ? { hint: response.error.hint } : {});
}
