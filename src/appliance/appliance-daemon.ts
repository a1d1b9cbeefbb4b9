// The helper appliance's process (the hidden `appliance` command, started by
// the first `launcher files` that finds none running on the stick): it boots
// the appliance, records its control address in run/appliance.json, and
// serves `files` commands until `files close --all` (or `stop`) ends it.
// Each open source is a disk hot-plugged on the appliance's SCSI controller,
// mounted inside by pocketvm-files under /mnt/files/NAME.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { createServer, type Server, type Socket } from 'node:net';
import { asPocketError, FilesError, LuksPassphraseError, type PocketError, ShareError, UsageError } from '../errors.ts';
import type { HostAdapter } from '../hostprobe/host-adapter.ts';
import type { GuestPayload } from '../payload/guest-payload.ts';
import { relayExec } from '../session/exec-relay.ts';
import type { StickLayout } from '../stick/layout.ts';
import {
  type ApplianceAddress,
  type ApplianceRequest,
  type AttachRequest,
  type CheckRequest,
  type CheckResult,
  type CustomizeRequest,
  type CustomizeResult,
  type InspectRequest,
  type PlugRequest,
  type InspectResult,
  MAX_APPLIANCE_REQUEST_BYTES,
  MAX_PASSPHRASE_BYTES,
  MOUNT_ROOT,
  type NewShare,
  type OpenSource,
  parseCheckLine,
  parseFound,
  parseOpenReport,
} from './appliance-protocol.ts';
import { bootAppliance, type ApplianceMachine, type ApplianceStart } from './appliance-machine.ts';
import { runInAppliance } from './guest-command.ts';
import { type PluggedSource, plugSource, unplugSource } from './source-disk.ts';
import { inspectSource } from './source-image.ts';
import { forwardPort, guestPorts, hostOwner, newPassword, SHARE_USER, type ShareInfo, shareUrls, unforwardPort } from './source-share.ts';
import { inspectHandler } from './inspect-handler.ts';
import { applianceAddressFile } from './appliance-paths.ts';
import { customizeHandler } from './customize-handler.ts';
import { plugHandler, unplugHandler } from './plug-handler.ts';

/** virtio-scsi targets a source may take (0…255); one source each. */
const MAX_TARGETS = 256;

/** A name for a new source from its file name: lower-case letters, digits and -, unique. */
export function nameFor(source: string, taken: ReadonlySet<string>): string {
  const stem =
    basename(source)
      .replace(/\.(img|raw|qcow2|vmdk|vhdx|vdi|iso|bin)$/i, '')
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 24) || 'disk';
  const base = /^[a-z]/.test(stem) ? stem : `d-${stem}`;
  if (!taken.has(base)) return base;
  for (let i = 2; ; i++) if (!taken.has(`${base}-${i}`)) return `${base}-${i}`;
}

interface Opened {
  info: OpenSource;
  plugged: PluggedSource;
  share?: ShareInfo;
}

export class ApplianceDaemon {
  readonly #appliance: ApplianceMachine;
  readonly #opened = new Map<string, Opened>();
  /** Disks plugged for image capture's own commands (plug-handler.ts), by target. */
  readonly #held = new Map<number, PluggedSource>();
  readonly #ended: Promise<void>;
  #end!: () => void;
  /** One attach or close at a time: targets and names are decided in order. */
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(appliance: ApplianceMachine) {
    this.#appliance = appliance;
    this.#ended = new Promise((resolve) => (this.#end = resolve));
    appliance.machine.on('exit', () => this.#end());
  }

  static async start(layout: StickLayout, payload: GuestPayload, host: HostAdapter, notice: (message: string) => void): Promise<ApplianceDaemon> {
    return new ApplianceDaemon(await bootAppliance(layout, payload, host, notice));
  }

  /** Resumed from its saved state or booted (and saved), and any one-line note about that. */
  get start(): ApplianceStart {
    return this.#appliance.start;
  }

  get ended(): Promise<void> {
    return this.#ended;
  }

  #serial<T>(work: () => Promise<T>): Promise<T> {
    const next = this.#queue.then(work, work);
    this.#queue = next.catch(() => {});
    return next;
  }

  /**
   * `passphrase` (the caller's; zeroed by it) goes to pocketvm-files on its
   * stdin through the exec channel, which is the only way it reaches the
   * appliance: never its command line, a log or the stick.
   */
  attach(request: AttachRequest, passphrase?: Buffer): Promise<OpenSource> {
    return this.#serial(async () => {
      const source = await inspectSource(request.source);
      const used = this.#usedTargets();
      const target = Array.from({ length: MAX_TARGETS }, (_, i) => i).find((i) => !used.has(i));
      if (target === undefined) throw new FilesError(`${MAX_TARGETS} sources are open already`, { hint: 'close one: launcher files close NAME' });
      const name = nameFor(source.path, new Set(this.#opened.keys()));
      const { machine, execs } = this.#appliance;
      const plugged = await plugSource(machine.qmp, source, target, request.readOnly).catch((cause: unknown) => {
        const message = cause instanceof Error ? cause.message : String(cause);
        throw new FilesError(`QEMU cannot open ${source.path} as ${source.format}: ${message}`, { cause, details: { reason: 'unreadable' } });
      });
      const argv = ['/usr/bin/pocketvm-files', 'open', name, String(target), request.readOnly ? 'ro' : 'rw'];
      const want = request.volume ?? (request.partition !== undefined ? String(request.partition) : undefined);
      if (want !== undefined) argv.push(want);
      const result = await runInAppliance(execs, argv, passphrase);
      if (result.exitCode !== 0) {
        await runInAppliance(execs, ['/usr/bin/pocketvm-files', 'close', name]).catch(() => {});
        await unplugSource(machine.qmp, plugged).catch(() => {});
        throw openFailure(source.path, result);
      }
      const info: OpenSource = {
        name,
        source: source.path,
        format: source.format,
        readOnly: request.readOnly,
        ...parseOpenReport(result.stdout),
        mountPoint: `${MOUNT_ROOT}/${name}`,
      };
      this.#opened.set(name, { info, plugged });
      return info;
    });
  }

  /** Plugs the source read-only, runs its file system's checker (no repair), unplugs it. */
  check(request: CheckRequest, passphrase?: Buffer): Promise<CheckResult> {
    return this.#serial(async () => {
      const source = await inspectSource(request.source);
      const used = this.#usedTargets();
      const target = Array.from({ length: MAX_TARGETS }, (_, i) => i).find((i) => !used.has(i));
      if (target === undefined) throw new FilesError(`${MAX_TARGETS} sources are open already`, { hint: 'close one: launcher files close NAME' });
      const name = `check-${target}`;
      const { machine, execs } = this.#appliance;
      // fsck.f2fs opens its device for writing even with --dry-run: an F2FS
      // is checked on a writable disk (its checker is told not to write);
      // every other checker gets a disk QEMU opened read-only.
      const check = async (readOnly: boolean) => {
        const plugged = await plugSource(machine.qmp, source, target, readOnly);
        try {
          const argv = ['/usr/bin/pocketvm-files', 'check', name, String(target)];
          const want = request.volume ?? (request.partition !== undefined ? String(request.partition) : undefined);
          if (want !== undefined) argv.push(want);
          return await runInAppliance(execs, argv, passphrase);
        } finally {
          await runInAppliance(execs, ['/usr/bin/pocketvm-files', 'close', name]).catch(() => {});
          await unplugSource(machine.qmp, plugged).catch(() => {});
        }
      };
      let result = await check(true);
      if (parseCheckLine(result.stdout)?.type === 'f2fs') result = await check(false);
      {
        const checked = parseCheckLine(result.stdout);
        if (!checked) throw openFailure(source.path, result);
        return {
          source: source.path,
          partition: checked.number,
          volume: checked.volume,
          type: checked.type,
          exitCode: checked.exitCode,
          clean: checked.exitCode === 0,
          output: result.stderr,
        };
      }
    });
  }

  #openedAs(name: string): Opened {
    const opened = this.#opened.get(name);
    if (!opened)
      throw new FilesError(`no source is open as "${name}"`, { hint: 'launcher files list shows what is open', details: { reason: 'no-such-name' } });
    return opened;
  }

  /** Serves an open source over WebDAV and SMB on the host's 127.0.0.1 (source-share.ts); the password is in this answer only. */
  share(name: string): Promise<NewShare> {
    return this.#serial(async () => {
      const started = performance.now();
      const opened = this.#openedAs(name);
      if (opened.share)
        throw new ShareError(`${name} is shared already (${opened.share.webdav.url})`, {
          hint: `its password was shown once; for a new one: launcher files share ${name} --stop, then share it again`,
          details: { reason: 'already-shared' },
        });
      const { machine, execs } = this.#appliance;
      const inGuest = guestPorts(opened.plugged.target);
      const owner = hostOwner();
      const password = newPassword();
      const mode = opened.info.readOnly ? 'ro' : 'rw';
      const argv = ['/usr/bin/pocketvm-share', 'start', name, String(inGuest.dav), String(inGuest.smb), String(owner.uid), String(owner.gid), mode];
      const result = await runInAppliance(execs, argv, Buffer.from(`${password}\n`));
      if (result.exitCode !== 0)
        throw new ShareError(`${name}: ${result.stderr.trim().split('\n').at(-1) || `the share did not start (exit ${result.exitCode})`}`, {
          details: { reason: result.exitCode === 4 ? 'already-shared' : 'server-failed' },
        });
      const ports: number[] = [];
      try {
        ports.push(await forwardPort(machine.qmp, inGuest.dav));
        ports.push(await forwardPort(machine.qmp, inGuest.smb));
      } catch (error) {
        for (const port of ports) await unforwardPort(machine.qmp, port).catch(() => {});
        await runInAppliance(execs, ['/usr/bin/pocketvm-share', 'stop', name]).catch(() => {});
        throw error;
      }
      const share: ShareInfo = {
        readOnly: opened.info.readOnly,
        user: SHARE_USER,
        ...shareUrls(name, ports[0]!, ports[1]!),
        owner,
        since: new Date().toISOString(),
      };
      opened.share = share;
      return { name, ...share, password, seconds: (performance.now() - started) / 1000 };
    });
  }

  /** Ends a share: its forwards first (nothing on the host answers any more), then its servers. */
  async #unshare(name: string, opened: Opened): Promise<void> {
    const { share } = opened;
    if (!share) return;
    const { machine, execs } = this.#appliance;
    await unforwardPort(machine.qmp, share.webdav.port).catch(() => {});
    await unforwardPort(machine.qmp, share.smb.port).catch(() => {});
    await runInAppliance(execs, ['/usr/bin/pocketvm-share', 'stop', name]);
    delete opened.share;
  }

  unshare(name: string): Promise<{ name: string; stopped: true }> {
    return this.#serial(async () => {
      const opened = this.#openedAs(name);
      if (!opened.share) throw new ShareError(`${name} is not shared`, { details: { reason: 'not-shared' } });
      await this.#unshare(name, opened);
      return { name, stopped: true as const };
    });
  }

  /** `image inspect`: the source plugged read-only at a free target while it is looked at (inspect-handler.ts). */
  inspect(request: InspectRequest): Promise<InspectResult> {
    return this.#serial(async () => {
      const used = this.#usedTargets();
      const target = Array.from({ length: MAX_TARGETS }, (_, i) => i).find((i) => !used.has(i));
      if (target === undefined) throw new FilesError(`${MAX_TARGETS} sources are open already`, { hint: 'close one: launcher files close NAME' });
      return inspectHandler(this.#appliance, request, target);
    });
  }

  #usedTargets(): Set<number> {
    return new Set([...[...this.#opened.values()].map((o) => o.plugged.target), ...this.#held.keys()]);
  }

  /** `image capture`: a disk plugged until unplug (plug-handler.ts). */
  plug(request: PlugRequest): Promise<{ target: number }> {
    return this.#serial(() => plugHandler(this.#appliance, request, this.#usedTargets(), this.#held));
  }

  unplug(target: number): Promise<{ target: number }> {
    return this.#serial(() => unplugHandler(this.#appliance, target, this.#held));
  }

  /** `image customize`: a new overlay plugged read-write at a free target while the steps are applied (customize-handler.ts). */
  customize(request: CustomizeRequest): Promise<CustomizeResult> {
    return this.#serial(async () => {
      const used = this.#usedTargets();
      const target = Array.from({ length: MAX_TARGETS }, (_, i) => i).find((i) => !used.has(i));
      if (target === undefined) throw new FilesError(`${MAX_TARGETS} sources are open already`, { hint: 'close one: launcher files close NAME' });
      return customizeHandler(this.#appliance, request, target);
    });
  }

  close(name: string): Promise<{ name: string }> {
    return this.#serial(async () => {
      const opened = this.#openedAs(name);
      await this.#unshare(name, opened);
      const { machine, execs } = this.#appliance;
      const result = await runInAppliance(execs, ['/usr/bin/pocketvm-files', 'close', name]);
      if (result.exitCode !== 0) throw new FilesError(`${name}: ${result.stderr.trim() || 'unmounting failed'}`, { details: { reason: 'busy' } });
      await unplugSource(machine.qmp, opened.plugged);
      this.#opened.delete(name);
      return { name };
    });
  }

  list(): OpenSource[] {
    return [...this.#opened.values()].map((o) => ({ ...o.info, ...(o.share ? { share: o.share } : {}) }));
  }

  /** Closes every source (unmount, flush, unplug), then powers the appliance off. */
  async stop(): Promise<void> {
    for (const name of [...this.#opened.keys()]) await this.close(name).catch(() => {});
    for (const target of [...this.#held.keys()]) await this.unplug(target).catch(() => {});
    await this.#appliance.machine.shutdown();
    this.#end();
  }

  async handle(request: ApplianceRequest, passphrase?: Buffer): Promise<unknown> {
    switch (request.op) {
      case 'attach':
        return this.attach(request, passphrase);
      case 'check':
        return this.check(request, passphrase);
      case 'inspect':
        return this.inspect(request);
      case 'plug':
        return this.plug(request);
      case 'unplug':
        return this.unplug(request.target);
      case 'customize':
        return this.customize(request);
      case 'close':
        return this.close(request.name);
      case 'share':
        return request.stop ? this.unshare(request.name) : this.share(request.name);
      case 'list':
        return this.list();
      case 'stop':
        // Answered first: the caller hears "stopped" once everything is closed.
        await this.stop();
        return { stopped: true };
      default:
        throw new UsageError(`unknown appliance request ${(request as { op: unknown }).op as string}`);
    }
  }

  /** Commands the launcher runs as root; their frames go both ways on the connection. */
  get execTarget() {
    return { execs: this.#appliance.execs, user: undefined };
  }
}

/** pocketvm-files' exit codes for a failed open or check (its header lists them), as the error a person sees. */
function openFailure(path: string, result: { exitCode: number; stdout: string; stderr: string }): PocketError {
  const line = result.stderr.trim().split('\n').at(-1) || `the appliance could not open it (exit ${result.exitCode})`;
  const found = parseFound(result.stdout);
  const details = { source: path, partitions: found.partitions, volumes: found.volumes };
  if (result.exitCode === 8)
    return new LuksPassphraseError('filesPassphrase', `${basename(path)}: ${line}; nothing was opened`, {
      hint: 'try again with the right passphrase',
      details: { reason: 'wrong-passphrase', ...details },
    });
  if (result.exitCode === 9)
    return new LuksPassphraseError('filesLocked', `${basename(path)}: ${line}`, {
      hint: 'run it at a terminal to be asked, or pass it with --passphrase-stdin',
      details: { reason: 'passphrase-needed', ...details },
    });
  const reason = { 3: 'no-disk', 4: 'nothing-mountable', 5: 'read-write-refused', 6: 'mount-failed' }[result.exitCode] ?? 'failed';
  return new FilesError(`${basename(path)}: ${line}`, {
    details: { reason, ...details },
    ...(reason === 'read-write-refused' ? { hint: 'open it without --rw to read it' } : {}),
  });
}

function tokenMatches(expected: string, given: unknown): boolean {
  return typeof given === 'string' && given.length === expected.length && timingSafeEqual(Buffer.from(given), Buffer.from(expected));
}

function serve(daemon: ApplianceDaemon, token: string, socket: Socket): void {
  // The request line is gathered as a list of chunks and joined once its newline
  // has come: a customize request carries files (up to MAX_APPLIANCE_REQUEST_BYTES),
  // and joining on every chunk would copy it hundreds of times.
  const chunks: Buffer[] = [];
  let length = 0;
  const reply = (response: unknown) => socket.end(`${JSON.stringify(response)}\n`);
  socket.on('error', () => {});
  const onData = (chunk: Buffer) => {
    const lineEnd = chunk.indexOf(0x0a);
    const lineLength = length + (lineEnd < 0 ? chunk.length : lineEnd);
    chunks.push(Buffer.from(chunk));
    length += chunk.length;
    // A chunk's bytes live on only in the copy, which is zeroed below once joined.
    chunk.fill(0);
    if (lineLength > MAX_APPLIANCE_REQUEST_BYTES) {
      socket.off('data', onData);
      for (const held of chunks) held.fill(0);
      return reply({ ok: false, error: { exit: 'usage', message: `appliance request longer than ${MAX_APPLIANCE_REQUEST_BYTES >> 20} MiB` } });
    }
    if (lineEnd < 0) return;
    socket.off('data', onData);
    // The join is a copy: a passphrase after the line lives on only in `buffer`, which readPassphrase zeroes.
    const buffer = Buffer.concat(chunks, length);
    for (const held of chunks) held.fill(0);
    const newline = lineLength;
    let request: ApplianceRequest;
    try {
      request = JSON.parse(buffer.subarray(0, newline).toString('utf8')) as ApplianceRequest;
    } catch {
      return reply({ ok: false, error: { exit: 'usage', message: 'malformed appliance request' } });
    }
    if (!tokenMatches(token, request.token)) return reply({ ok: false, error: { exit: 'usage', message: 'appliance request refused: wrong token' } });
    if (request.op === 'exec-stream') return relayExec(daemon.execTarget, { ...request, root: true }, socket, buffer.subarray(newline + 1));
    const wanted = request.op === 'attach' || request.op === 'check' ? (request.passphraseBytes ?? 0) : 0;
    if (!Number.isInteger(wanted) || wanted < 0 || wanted > MAX_PASSPHRASE_BYTES)
      return reply({ ok: false, error: { exit: 'usage', message: 'malformed appliance request: passphraseBytes' } });
    readPassphrase(socket, buffer, newline + 1, wanted, (passphrase) => answer(request, passphrase));
  };
  const answer = (request: ApplianceRequest, passphrase: Buffer | undefined) => {
    const forget = () => passphrase?.fill(0);
    daemon.handle(request, passphrase).then(
      (result) => {
        forget();
        reply({ ok: true, result });
      },
      (error: unknown) => {
        forget();
        const failure = asPocketError(error);
        reply({
          ok: false,
          error: { exit: failure.exit, message: failure.message, ...(failure.hint ? { hint: failure.hint } : {}), details: failure.details },
        });
      },
    );
  };
  socket.on('data', onData);
}

/**
 * The passphrase's bytes after the request's line: `wanted` of them, already
 * in `buffer` from `from` on or still arriving. Every buffer that held some is
 * zeroed once copied out; the copy is the caller's to zero.
 */
function readPassphrase(socket: Socket, buffer: Buffer, from: number, wanted: number, done: (passphrase: Buffer | undefined) => void): void {
  if (wanted === 0) {
    buffer.fill(0);
    return done(undefined);
  }
  const passphrase = Buffer.alloc(wanted);
  let have = buffer.copy(passphrase, 0, from, Math.min(buffer.length, from + wanted));
  buffer.fill(0);
  if (have === wanted) return done(passphrase);
  const more = (chunk: Buffer) => {
    have += chunk.copy(passphrase, have, 0, Math.min(chunk.length, wanted - have));
    chunk.fill(0);
    if (have < wanted) return;
    socket.off('data', more);
    done(passphrase);
  };
  socket.on('data', more);
}

async function closeServer(server: Server, file: string, privateDir: string | undefined): Promise<void> {
  // Not awaited: close() waits for open connections, and the `stop` that ended the appliance is one, still owed its reply.
  server.close();
  await rm(file, { force: true });
  if (privateDir) await rm(privateDir, { recursive: true, force: true });
}

/** Serves the daemon on a private socket and records the address; `closed` settles once the appliance has ended and the address is gone. */
export async function serveAppliance(daemon: ApplianceDaemon, layout: StickLayout, host: HostAdapter): Promise<ApplianceAddress & { closed: Promise<void> }> {
  const endpoint = await host.controlEndpoint();
  const address: ApplianceAddress = {
    pid: process.pid,
    path: endpoint.path,
    token: randomBytes(24).toString('hex'),
    ...(endpoint.privateDir ? { privateDir: endpoint.privateDir } : {}),
    startedAt: new Date().toISOString(),
  };
  const server = createServer((socket) => serve(daemon, address.token, socket));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(address.path, () => resolve());
  });
  const file = applianceAddressFile(layout);
  await writeFile(file, `${JSON.stringify(address, null, 2)}\n`, { mode: 0o600 });
  return { ...address, closed: daemon.ended.then(() => closeServer(server, file, address.privateDir)) };
}
