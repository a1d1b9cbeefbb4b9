// `launcher files` reaching the stick's helper appliance: the running one
// (run/appliance.json names its socket and token), or a new one started in a
// background process of its own (the hidden `appliance` command), which
// reports over IPC once the appliance answers. Later commands find it there.
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { ExitCode, type ExitCodeName, GuestFailedError, PocketError, TimeoutError } from '../errors.ts';
import { LOG_LIMITS, prepareLogFile } from '../primitives/capped-log.ts';
import { selfCommand } from '../runtime/self.ts';
import { type ExecSinks, openRemoteExecAt, type RemoteExec } from '../session/exec-client.ts';
import type { StickLayout } from '../stick/layout.ts';
import type { ApplianceAddress, ApplianceRequest, ApplianceResults } from './appliance-protocol.ts';
import type { ApplianceStart } from './appliance-machine.ts';
import { applianceAddressFile, applianceLogs } from './appliance-paths.ts';

/** What the appliance process tells the launcher that started it. */
export type ApplianceMessage =
  { type: 'ready'; address: ApplianceAddress; bootMs: number; start: ApplianceStart } | { type: 'error'; exit: string; message: string; hint?: string };

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The running appliance of this stick, if any. */
export async function findAppliance(layout: StickLayout): Promise<ApplianceAddress | undefined> {
  let address: ApplianceAddress;
  try {
    address = JSON.parse(await readFile(applianceAddressFile(layout), 'utf8')) as ApplianceAddress;
  } catch {
    return undefined;
  }
  return alive(address.pid) ? address : undefined;
}

export class NoApplianceError extends PocketError {
  constructor(root: string) {
    super('noSession', `no helper appliance is running for ${root}`, { hint: 'launcher files open SOURCE starts one' });
  }
}

/** Starts the appliance in the background and waits until it answers. */
export async function startAppliance(
  layout: StickLayout,
  payloadDir: string,
  onEvent: (message: string) => void,
): Promise<ApplianceAddress & { bootMs: number; start: ApplianceStart }> {
  await mkdir(layout.runDir, { recursive: true });
  const log = applianceLogs(layout).daemon;
  prepareLogFile(log, LOG_LIMITS.session);
  const logFd = openSync(log, 'a');
  const self = selfCommand();
  const child = spawn(self.command, [...self.args, 'appliance', '--stick', layout.root, '--payload', payloadDir], {
    detached: true,
    stdio: ['ignore', logFd, logFd, 'ipc'],
  });
  closeSync(logFd);
  onEvent('starting the helper appliance');
  return new Promise((resolve, reject) => {
    child.on('message', (message: ApplianceMessage) => {
      child.disconnect();
      child.unref();
      if (message.type === 'ready') return resolve({ ...message.address, bootMs: message.bootMs, start: message.start });
      const exit = (message.exit in ExitCode ? message.exit : 'internal') as ExitCodeName;
      reject(new PocketError(exit, message.message, message.hint ? { hint: message.hint } : {}));
    });
    child.on('exit', (code, signal) =>
      reject(new GuestFailedError(`the appliance process ended before it was ready (${signal ?? `exit ${code}`})`, { hint: `its log: ${log}` })),
    );
  });
}

type Op = Exclude<ApplianceRequest['op'], 'exec-stream'>;
type Body<K extends Op> = Omit<Extract<ApplianceRequest, { op: K }>, 'op' | 'token'>;

/** Longer than the slowest answer: closing every source and powering off. */
const REQUEST_TIMEOUT_MS = 300_000;
/**
 * customize runs the person's steps, and adapt's: an initramfs made again
 * and packages installed under TCG took more than 300 s on a loaded two-core
 * machine (bench boot-share, docs/benchmarks.md), with nothing wrong.
 */
const CUSTOMIZE_TIMEOUT_MS = 1_800_000;

/**
 * One request, one answer. `passphrase` (attach, check) is sent as raw bytes
 * after the request's line, its length in the request; the caller zeroes it.
 */
export async function applianceRequest<K extends Op>(
  layout: StickLayout,
  address: ApplianceAddress,
  op: K,
  body: Body<K>,
  passphrase?: Buffer,
): Promise<ApplianceResults[K]> {
  const text = await new Promise<string>((resolve, reject) => {
    const socket = connect(address.path);
    let data = '';
    socket.setEncoding('utf8');
    socket.on('connect', () => {
      socket.write(`${JSON.stringify({ ...body, op, token: address.token, ...(passphrase ? { passphraseBytes: passphrase.length } : {}) })}\n`);
      // Written before the answer can come, so the caller's zeroing (after the answer) finds it sent.
      if (passphrase) socket.write(passphrase);
    });
    socket.on('data', (chunk: string) => (data += chunk));
    socket.on('end', () => resolve(data));
    const timeoutMs = op === 'customize' ? CUSTOMIZE_TIMEOUT_MS : REQUEST_TIMEOUT_MS;
    socket.setTimeout(timeoutMs, () => {
      socket.destroy();
      reject(new TimeoutError(`the appliance's answer to ${op}`, timeoutMs, `its log: ${applianceLogs(layout).daemon}`));
    });
    socket.on('error', (error: NodeJS.ErrnoException) =>
      reject(error.code === 'ENOENT' || error.code === 'ECONNREFUSED' ? new NoApplianceError(layout.root) : error),
    );
  });
  if (!text.trim()) throw new NoApplianceError(layout.root);
  const response = JSON.parse(text) as
    { ok: true; result: ApplianceResults[K] } | { ok: false; error: { exit: string; message: string; hint?: string; details?: Record<string, unknown> } };
  if (response.ok) return response.result;
  const exit = (response.error.exit in ExitCode ? response.error.exit : 'internal') as ExitCodeName;
  throw new PocketError(exit, response.error.message, { ...(response.error.hint ? { hint: response.error.hint } : {}), details: response.error.details ?? {} });
}

/** A command in the appliance (as root), its output streamed to the sinks. */
export function applianceExec(layout: StickLayout, address: ApplianceAddress, argv: string[], sinks: ExecSinks): Promise<RemoteExec> {
  const [path, ...args] = argv;
  return openRemoteExecAt(address, { path: path!, args, root: true }, sinks, () => new NoApplianceError(layout.root));
}
