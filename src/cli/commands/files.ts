// `launcher files …`: open a disk or image the host cannot read through the
// helper appliance (docs/files.md), list and read what it holds, close it.
// Every command finds the stick's running appliance (or starts one) and runs
// its work there through the exec channel; bytes stream straight through.
import { createReadStream, createWriteStream } from 'node:fs';
import { rename, rm, stat } from 'node:fs/promises';
import { join, posix, resolve } from 'node:path';
import type { Command } from 'commander';
import { applianceExec, applianceRequest, findAppliance, startAppliance } from '../../appliance/appliance-client.ts';
import { type ApplianceAddress, type FileEntry, MOUNT_ROOT, type OpenSource, parseEntries } from '../../appliance/appliance-protocol.ts';
import { carryXattrs } from '../../appliance/local-xattrs.ts';
import { openHints } from '../../appliance/source-share.ts';
import { FilesError, PocketError, UsageError } from '../../errors.ts';
import type { StickLayout } from '../../stick/layout.ts';
import { openStick, resolveStickRoot } from '../../stick/stick-root.ts';
import { ensurePayloadBuilt, sourcePayloadRoot } from '../bootstrap.ts';
import type { Output } from '../output.ts';
import { jsonOption, stickOption } from './options.ts';

export const APPLIANCE_GUEST = 'appliance';

interface Appliance {
  layout: StickLayout;
  address: ApplianceAddress;
}

/**
 * The stick's appliance payload, else this checkout's (built on first use).
 * The stick's is only looked for here: the appliance's own process verifies
 * it (every file against SHA256SUMS) before QEMU starts, so a cold `files`
 * command hashes its 55 MB once, not twice.
 */
async function appliancePayloadDir(out: Output, layout: StickLayout): Promise<string> {
  const onStick = join(layout.payloadRoot, APPLIANCE_GUEST);
  if ((await stat(join(onStick, 'guest.json')).catch(() => undefined))?.isFile()) return onStick;
  await ensurePayloadBuilt(out, APPLIANCE_GUEST);
  return join(sourcePayloadRoot, APPLIANCE_GUEST);
}

export async function appliance(out: Output, stick: string | undefined, start: boolean): Promise<Appliance | undefined> {
  const layout = await openStick(resolveStickRoot(stick));
  const running = await findAppliance(layout);
  if (running) return { layout, address: running };
  if (!start) return undefined;
  const address = await startAppliance(layout, await appliancePayloadDir(out, layout), (message) => out.info(message));
  if (address.start.note) out.info(address.start.note);
  const how =
    address.start.how === 'resumed'
      ? 'resumed from its saved state'
      : address.start.savedMs === undefined
        ? 'booted'
        : 'booted; its state saved for the next start';
  out.info(`helper appliance ready in ${(address.bootMs / 1000).toFixed(1)} s (${how})`);
  return { layout, address };
}

/** How many layers down from its partition a volume id is: luks and md are one each, VG/LV one. */
export function layerDepth(id: string): number {
  const steps = id.split('/').slice(1);
  let depth = 0;
  for (let i = 0; i < steps.length; i++, depth++) if (steps[i] !== 'luks' && steps[i] !== 'md') i++;
  return depth;
}

/**
 * What a source holds, as a tree: its partitions, and under the one each
 * starts in, the LUKS, md and LVM volumes inside (by id: 2/luks, 4/vg0/data).
 */
function describe(source: OpenSource): string[] {
  const gib = (bytes: number) => (bytes >= 1 << 30 ? `${(bytes / (1 << 30)).toFixed(1)} GiB` : `${Math.round(bytes / (1 << 20))} MiB`);
  const lines = [`${source.name}  ${source.source} (${source.format}, ${gib(source.disk.bytes)}, partition table: ${source.disk.partitionTable ?? 'none'})`];
  const what = (type: string | null, label: string | null, locked: boolean) =>
    `${type ?? 'unknown'}${label ? `  "${label}"` : ''}${locked ? '  (locked: no passphrase given)' : ''}`;
  const mountedVolume = source.mounted.volume;
  const volumes = source.volumes;
  for (const part of source.partitions) {
    const mark = String(part.number) === mountedVolume ? '*' : ' ';
    const locked = volumes.some((v) => v.id === String(part.number) && v.locked);
    lines.push(`  ${mark} ${part.number === 0 ? 'whole disk' : `partition ${part.number}`}  ${gib(part.bytes)}  ${what(part.type, part.label, locked)}`);
    for (const volume of volumes.filter((v) => v.id.startsWith(`${part.number}/`))) {
      lines.push(
        `  ${volume.id === mountedVolume ? '*' : ' '} ${'  '.repeat(layerDepth(volume.id))}${volume.id}  ${gib(volume.bytes)}  ${what(volume.type, volume.label, volume.locked)}`,
      );
    }
  }
  lines.push(
    `  mounted ${source.mounted.type}${mountedVolume.includes('/') ? ` (${mountedVolume})` : ''} ${source.readOnly ? 'read-only' : 'read-write'} as ${source.name}: (use ${source.name}:/PATH)`,
  );
  if (source.share) lines.push(`  shared since ${source.share.since}: WebDAV ${source.share.webdav.url}  SMB ${source.share.smb.url}`);
  return lines;
}

/** NAME:PATH with NAME an open source, or IMAGE:PATH with IMAGE an image file opened read-only for this one command. */
async function resolveSpec(
  out: Output,
  stick: string | undefined,
  spec: string,
): Promise<{ app: Appliance; name: string; path: string; temporary: boolean; readOnly: boolean }> {
  const colon = spec.indexOf(':');
  if (colon <= 0) throw new UsageError(`"${spec}" is not NAME:PATH`, 'name the source as files open printed it, then the path: disk:/etc/os-release');
  const running = await appliance(out, stick, false);
  if (running) {
    const open = await applianceRequest(running.layout, running.address, 'list', {});
    const name = spec.slice(0, colon);
    const found = open.find((s) => s.name === name);
    if (found) return { app: running, name, path: spec.slice(colon + 1), temporary: false, readOnly: found.readOnly };
  }
  // An image path may itself hold colons: the longest prefix that is a file.
  for (let at = spec.lastIndexOf(':'); at > 0; at = spec.lastIndexOf(':', at - 1)) {
    const candidate = spec.slice(0, at);
    const info = await stat(candidate).catch(() => undefined);
    if (!info || !(info.isFile() || info.isBlockDevice())) continue;
    const app = running ?? (await appliance(out, stick, true))!;
    const opened = await applianceRequest(app.layout, app.address, 'attach', { source: resolve(candidate), readOnly: true });
    return { app, name: opened.name, path: spec.slice(at + 1), temporary: true, readOnly: true };
  }
  throw new FilesError(`no source is open as "${spec.slice(0, colon)}" and no image file is called that`, {
    hint: 'open it first: launcher files open SOURCE (it prints the NAME)',
    details: { reason: 'no-such-name' },
  });
}

/** Where NAME:PATH is inside the appliance; a path never climbs out of its source. */
export function guestPath(name: string, path: string): string {
  return posix.join(MOUNT_ROOT, name, posix.join('/', path));
}

interface Captured {
  exitCode: number;
  stdout: Buffer;
  stderr: string;
}

async function capture(app: Appliance, argv: string[]): Promise<Captured> {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const remote = await applianceExec(app.layout, app.address, argv, {
    stdout: (data) => out.push(data) > 0,
    stderr: (data) => err.push(data) > 0,
  });
  remote.end();
  const outcome = await remote.outcome;
  const exitCode = outcome.kind === 'exit' ? (outcome.signal ? 128 + outcome.signal : outcome.exitCode) : outcome.exitCode;
  return { exitCode, stdout: Buffer.concat(out), stderr: outcome.kind === 'failed' ? outcome.message : Buffer.concat(err).toString('utf8') };
}

/** Streams a file's bytes from the appliance into `sink`; its size for progress comes first. */
async function streamFile(app: Appliance, path: string, write: (data: Buffer, resume: () => void) => boolean): Promise<void> {
  let error = '';
  const remote = await applianceExec(app.layout, app.address, ['/bin/cat', '--', path], {
    stdout: write,
    stderr: (data) => {
      error += data.toString('utf8');
      return true;
    },
  });
  remote.end();
  const outcome = await remote.outcome;
  if (outcome.kind === 'failed') throw new FilesError(outcome.message);
  if (outcome.exitCode !== 0) throw notFound(path, error);
}

function notFound(path: string, stderr: string): FilesError {
  const shown = path.split('/').slice(4).join('/');
  return new FilesError(`/${shown}: ${stderr.trim().split('\n').at(-1)?.replace(/^.*: /, '') || 'cannot read it'}`, { details: { reason: 'no-such-path' } });
}

async function withSpec<T>(
  out: Output,
  stick: string | undefined,
  spec: string,
  work: (app: Appliance, path: string) => Promise<T>,
  options: { writes?: boolean } = {},
): Promise<T> {
  const { app, name, path, temporary, readOnly } = await resolveSpec(out, stick, spec);
  try {
    if (options.writes && readOnly)
      throw new FilesError(`${temporary ? spec.slice(0, spec.lastIndexOf(':')) : name} is open read-only`, {
        hint: `close it and open it with --rw: launcher files open --rw SOURCE`,
        details: { reason: 'read-only' },
      });
    return await work(app, guestPath(name, path));
  } finally {
    if (temporary) await applianceRequest(app.layout, app.address, 'close', { name });
  }
}

/** Runs a command in the appliance with `input` as its stdin, flow-controlled both ways. */
async function pipeInto(app: Appliance, argv: string[], input: NodeJS.ReadableStream): Promise<{ exitCode: number; stderr: string; sent: number }> {
  let stderr = '';
  const remote = await applianceExec(app.layout, app.address, argv, {
    stdout: () => true,
    stderr: (data) => {
      stderr += data.toString('utf8');
      return true;
    },
  });
  let sent = 0;
  remote.onDrain(() => input.resume());
  input.on('data', (chunk: Buffer) => {
    sent += chunk.length;
    if (!remote.write(chunk)) input.pause();
  });
  input.once('end', () => remote.end());
  input.once('error', () => remote.end());
  const outcome = await remote.outcome;
  if (outcome.kind === 'failed') return { exitCode: outcome.exitCode, stderr: outcome.message, sent };
  return { exitCode: outcome.signal ? 128 + outcome.signal : outcome.exitCode, stderr, sent };
}

function entryLine(entry: FileEntry): string {
  const kind = { file: '-', directory: 'd', symlink: 'l', other: '?' }[entry.kind];
  const perms = [6, 3, 0].map((shift) => ['r', 'w', 'x'].map((c, i) => ((entry.mode >> shift) & (4 >> i) ? c : '-')).join('')).join('');
  const when = new Date(entry.mtime * 1000).toISOString().slice(0, 16).replace('T', ' ');
  return `${kind}${perms} ${String(entry.links).padStart(3)} ${String(entry.size).padStart(12)} ${when} ${entry.name}${entry.target ? ` -> ${entry.target}` : ''}`;
}

/** `  xattr NAME = "text"` (printable UTF-8) or `= 0xHEX`, one a line. */
function xattrLines(entry: FileEntry): string[] {
  return Object.entries(entry.xattrs ?? {}).map(([name, base64]) => {
    const value = Buffer.from(base64, 'base64');
    const text = value.toString('utf8');
    const printable = Buffer.from(text, 'utf8').equals(value) && !/[\p{Cc}]/u.test(text);
    return `  xattr ${name} = ${printable ? JSON.stringify(text) : `0x${value.toString('hex')}`}`;
  });
}

/** A writable that may hand back pressure to the exec stream. */
function sinkTo(stream: NodeJS.WritableStream & { destroyed?: boolean }, onBytes?: (n: number) => void) {
  return (data: Buffer, resume: () => void) => {
    onBytes?.(data.length);
    if (stream.destroyed) return true;
    if (stream.write(data)) return true;
    stream.once('drain', resume);
    return false;
  };
}

/** --partition N or --volume ID, checked. */
function chosenVolume(options: { partition?: string; volume?: string }): { partition?: number; volume?: string } {
  if (options.partition !== undefined && options.volume !== undefined) throw new UsageError('--partition and --volume each choose what to mount: give one');
  if (options.volume !== undefined) {
    if (!/^\d+(\/[A-Za-z0-9+_.-]+)+$/.test(options.volume))
      throw new UsageError(`--volume ${options.volume} is not a volume id`, 'the ids files open prints under a partition: 2/luks, 4/vg0/data, 2/md');
    return { volume: options.volume };
  }
  if (options.partition === undefined) return {};
  const partition = Number(options.partition);
  if (!Number.isInteger(partition) || partition < 0 || partition > 128)
    throw new UsageError(`--partition ${options.partition} is not a partition number`, '1, 2, … or 0 for the whole disk');
  return { partition };
}

/**
 * Runs an open or check with the LUKS passphrase: from stdin's first line
 * with --passphrase-stdin (sent at once), else only when the appliance finds
 * a LUKS volume in the way: then asked at the terminal without echo (three
 * tries), or the command ends with exit 24 where there is none. The Buffer is
 * zeroed once the appliance has answered.
 */
async function withPassphrase<T>(out: Output, source: string, fromStdin: boolean, request: (passphrase?: Buffer) => Promise<T>): Promise<T> {
  const { PROMPT_ATTEMPTS, promptPassphrase, stdinLine } = await import('../login.ts');
  const attempt = async (passphrase: Buffer) => {
    try {
      return await request(passphrase);
    } finally {
      passphrase.fill(0);
    }
  };
  if (fromStdin) return attempt(await stdinLine(0, `the passphrase for ${source}`));
  try {
    return await request();
  } catch (error) {
    if (!(error instanceof PocketError) || error.exit !== 'filesLocked' || !process.stdin.isTTY) throw error;
    for (let tries = 1; ; tries++) {
      try {
        return await attempt(await promptPassphrase(`passphrase for ${error.message.replace(/ needs its passphrase$/, '')}`));
      } catch (retry) {
        if (!(retry instanceof PocketError) || retry.exit !== 'filesPassphrase' || tries >= PROMPT_ATTEMPTS) throw retry;
        out.info(retry.message);
      }
    }
  }
}

export function registerFiles(program: Command, output: () => Output): void {
  const files = program.command('files').description('open disks and images the host cannot read, through the helper appliance (docs/files.md)');
  const sub = (name: string, description: string) => jsonOption(stickOption(files.command(name).description(description)));

  sub('open', 'open an image file (raw, qcow2, vmdk, vhdx, vdi) or block device; prints what it holds and its NAME')
    .argument('<source>', 'an image file or a block device')
    .option('--rw', 'mount it read-write (default: read-only; QEMU opens the source read-only too)')
    .option('--partition <n>', 'the partition to mount, or the first file system inside it (1, 2, …; 0 the whole disk); default: the first with a file system')
    .option('--volume <id>', 'the volume to mount, by the id files open printed (2/luks, 4/vg0/data, 2/md)')
    .option('--passphrase-stdin', "read a LUKS volume's passphrase from the first line of stdin (default: asked at the terminal when one is found)")
    .action(async (source: string, options: { stick?: string; rw?: boolean; partition?: string; volume?: string; passphraseStdin?: boolean }) => {
      const out = output();
      const want = chosenVolume(options);
      await stat(source).catch((cause: unknown) => {
        throw new FilesError(`${source} does not exist`, { cause, details: { reason: 'no-source' } });
      });
      const app = (await appliance(out, options.stick, true))!;
      const opened = await withPassphrase(out, source, options.passphraseStdin === true, (passphrase) =>
        applianceRequest(app.layout, app.address, 'attach', { source: resolve(source), readOnly: !options.rw, ...want }, passphrase),
      );
      out.data(opened);
      for (const line of describe(opened)) out.line(line);
    });

  sub('list', 'the sources open in the helper appliance').action(async (options: { stick?: string }) => {
    const out = output();
    const app = await appliance(out, options.stick, false);
    const open = app ? await applianceRequest(app.layout, app.address, 'list', {}) : [];
    out.data(open);
    if (open.length === 0) out.line('nothing is open');
    for (const source of open) for (const line of describe(source)) out.line(line);
  });

  sub('ls', 'list a folder of an open source (NAME:PATH)')
    .argument('<spec>', 'NAME:PATH')
    .action(async (spec: string, options: { stick?: string }) => {
      const out = output();
      const entries = await withSpec(out, options.stick, spec, async (app, path) => {
        const result = await capture(app, ['/usr/bin/pocketvm-files', 'ls', path]);
        if (result.exitCode !== 0) throw notFound(path, result.stderr);
        return parseEntries(result.stdout.toString('utf8')).sort((a, b) => (a.name < b.name ? -1 : 1));
      });
      out.data(entries);
      for (const entry of entries) out.line(entryLine(entry));
    });

  sub('stat', 'show one entry of an open source (NAME:PATH)')
    .argument('<spec>', 'NAME:PATH')
    .action(async (spec: string, options: { stick?: string }) => {
      const out = output();
      const entry = await withSpec(out, options.stick, spec, async (app, path) => {
        const result = await capture(app, ['/usr/bin/pocketvm-files', 'stat', path]);
        const [found] = parseEntries(result.stdout.toString('utf8'));
        if (result.exitCode !== 0 || !found) throw notFound(path, result.stderr);
        return { ...found, name: posix.basename(path) || '/' };
      });
      out.data(entry);
      out.line(entryLine(entry));
      for (const line of xattrLines(entry)) out.line(line);
    });

  sub('cat', 'write a file of an open source (NAME:PATH), or of an image (IMAGE:PATH, opened read-only for this command), to stdout')
    .argument('<spec>', 'NAME:PATH or IMAGE:PATH')
    .action(async (spec: string, options: { stick?: string }) => {
      const out = output();
      const chunks: Buffer[] = [];
      await withSpec(out, options.stick, spec, (app, path) => streamFile(app, path, out.json ? (data) => chunks.push(data) > 0 : sinkTo(process.stdout)));
      out.data({ base64: Buffer.concat(chunks).toString('base64') });
    });

  sub('get', 'copy a file of an open source (NAME:PATH) to LOCAL, with progress')
    .argument('<spec>', 'NAME:PATH or IMAGE:PATH')
    .argument('<local>', 'the file to write on the host (a folder: the same name inside it)')
    .action(async (spec: string, local: string, options: { stick?: string }) => {
      const out = output();
      const started = performance.now();
      const result = await withSpec(out, options.stick, spec, async (app, path) => {
        const sized = await capture(app, ['/usr/bin/pocketvm-files', 'stat', path]);
        const [entry] = parseEntries(sized.stdout.toString('utf8'));
        if (sized.exitCode !== 0 || !entry) throw notFound(path, sized.stderr);
        if (entry.kind === 'directory') throw new FilesError(`${spec} is a folder; files get copies one file`, { details: { reason: 'is-a-folder' } });
        const isDir = (await stat(local).catch(() => undefined))?.isDirectory();
        const target = isDir ? posix.join(local, posix.basename(path)) : local;
        const temp = `${target}.pocketvm-partial`;
        const file = createWriteStream(temp);
        let copied = 0;
        let shown = 0;
        const progress = !out.json && process.stderr.isTTY && entry.size > 16 << 20;
        const onBytes = (n: number) => {
          copied += n;
          if (progress && performance.now() - shown > 250) {
            shown = performance.now();
            process.stderr.write(`\rpocketvm: ${Math.round(copied / (1 << 20))} of ${Math.round(entry.size / (1 << 20))} MiB`);
          }
        };
        try {
          await streamFile(app, path, sinkTo(file, onBytes));
          await new Promise<void>((resolveEnd, reject) => file.end((error?: Error | null) => (error ? reject(error) : resolveEnd())));
          await rename(temp, target);
        } catch (error) {
          file.destroy();
          await rm(temp, { force: true });
          throw error;
        }
        if (progress) process.stderr.write('\n');
        return { target, bytes: copied, xattrs: await carryXattrs(target, entry.xattrs) };
      });
      const seconds = (performance.now() - started) / 1000;
      out.data({ ...result, seconds });
      out.info(`copied ${result.bytes} bytes to ${result.target} in ${seconds.toFixed(1)} s`);
      const { carried, skipped, why } = result.xattrs;
      if (carried.length > 0) out.info(`extended attributes set on the copy: ${carried.join(', ')}`);
      if (skipped.length > 0) out.info(`extended attributes not set on the copy: ${skipped.join(', ')} (${why ?? 'not set'})`);
    });

  sub('put', 'write a file (LOCAL, or - for stdin) into a source opened with --rw (NAME:PATH)')
    .argument('<local>', 'the file on the host, or - for stdin')
    .argument('<spec>', 'NAME:PATH')
    .action(async (local: string, spec: string, options: { stick?: string }) => {
      const out = output();
      const input = local === '-' ? process.stdin : createReadStream(local);
      if (local !== '-') {
        const info = await stat(local);
        if (!info.isFile()) throw new UsageError(`${local} is not a file`, 'files put copies one file');
      }
      const started = performance.now();
      const bytes = await withSpec(
        out,
        options.stick,
        spec,
        async (app, path) => {
          const result = await pipeInto(app, ['/usr/bin/pocketvm-files', 'put', path], input);
          if (result.exitCode !== 0) throw notFound(path, result.stderr);
          return result.sent;
        },
        { writes: true },
      );
      const seconds = (performance.now() - started) / 1000;
      out.data({ spec, bytes, seconds });
      out.info(`wrote ${bytes} bytes to ${spec} in ${seconds.toFixed(1)} s`);
    });

  for (const [verb, what] of [
    ['rm', 'remove a file, a symlink or an empty folder from a source opened with --rw (NAME:PATH)'],
    ['mkdir', 'make a folder (and its parents) in a source opened with --rw (NAME:PATH)'],
  ] as const) {
    sub(verb, what)
      .argument('<spec>', 'NAME:PATH')
      .action(async (spec: string, options: { stick?: string }) => {
        const out = output();
        await withSpec(
          out,
          options.stick,
          spec,
          async (app, path) => {
            const result = await capture(app, ['/usr/bin/pocketvm-files', verb, path]);
            if (result.exitCode !== 0) throw notFound(path, result.stderr);
          },
          { writes: true },
        );
        out.data({ spec, done: verb });
      });
  }

  sub('check', "check a source's file system with its own fsck (no repair, nothing written), in the appliance")
    .argument('<source>', 'an image file or a block device (not one open now)')
    .option('--partition <n>', 'the partition to check; default: the first with a file system')
    .option('--volume <id>', 'the volume to check, by the id files open printed (2/luks, 4/vg0/data, 2/md)')
    .option('--passphrase-stdin', "read a LUKS volume's passphrase from the first line of stdin (default: asked at the terminal when one is found)")
    .action(async (source: string, options: { stick?: string; partition?: string; volume?: string; passphraseStdin?: boolean }) => {
      const out = output();
      const want = chosenVolume(options);
      await stat(source).catch((cause: unknown) => {
        throw new FilesError(`${source} does not exist`, { cause, details: { reason: 'no-source' } });
      });
      const app = (await appliance(out, options.stick, true))!;
      const result = await withPassphrase(out, source, options.passphraseStdin === true, (passphrase) =>
        applianceRequest(app.layout, app.address, 'check', { source: resolve(source), ...want }, passphrase),
      );
      out.data(result);
      out.line(
        `${source}: ${result.volume.includes('/') ? result.volume : `partition ${result.partition}`}, ${result.type}: ${result.clean ? 'clean' : `the checker found problems (exit ${result.exitCode})`}`,
      );
      if (!result.clean) {
        if (!out.json) process.stderr.write(result.output);
        throw new FilesError(`${source}: its ${result.type} file system is not clean`, { details: { reason: 'not-clean', exitCode: result.exitCode } });
      }
    });

  sub('share', 'serve an open source to this computer over WebDAV and SMB on 127.0.0.1, with a password shown once; --stop ends it')
    .argument('<name>', 'the NAME files open printed')
    .option('--stop', 'end the share (files close ends it too)')
    .action(async (name: string, options: { stick?: string; stop?: boolean }) => {
      const out = output();
      const app = await appliance(out, options.stick, false);
      if (!app)
        throw new FilesError(`no source is open as "${name}"`, { hint: 'open it first: launcher files open SOURCE', details: { reason: 'no-such-name' } });
      const result = await applianceRequest(app.layout, app.address, 'share', { name, ...(options.stop ? { stop: true } : {}) });
      out.data(result);
      if (!('password' in result)) return out.line(`${name} is no longer shared`);
      out.line(
        `sharing ${name} ${result.readOnly ? 'read-only' : 'read-write'} on this computer only (127.0.0.1), until files close ${name} or files share ${name} --stop`,
      );
      out.line(`  WebDAV    ${result.webdav.url}`);
      out.line(`  SMB       ${result.smb.url}`);
      out.line(`  user      ${result.user}`);
      out.line(`  password  ${result.password}   (shown this once)`);
      for (const hint of openHints(result)) out.line(`  ${hint}`);
      if (!result.readOnly) out.line(`  files written through the share belong to uid ${result.owner.uid}, gid ${result.owner.gid} in the source`);
    });

  sub('close', 'unmount an open source, flush and sync it, and let it go; --all also stops the appliance')
    .argument('[name]', 'the NAME files open printed')
    .option('--all', 'close every source and stop the helper appliance')
    .action(async (name: string | undefined, options: { stick?: string; all?: boolean }) => {
      const out = output();
      if (!name && !options.all) throw new UsageError('files close needs a NAME or --all');
      const app = await appliance(out, options.stick, false);
      if (options.all) {
        if (app) await applianceRequest(app.layout, app.address, 'stop', {});
        out.data({ closed: 'all', stopped: app !== undefined });
        out.line(app ? 'closed every source; the helper appliance stopped' : 'nothing was open');
        return;
      }
      if (!app) throw new FilesError(`no source is open as "${name}"`, { details: { reason: 'no-such-name' } });
      const closed = await applianceRequest(app.layout, app.address, 'close', { name: name! });
      out.data(closed);
      out.line(`closed ${closed.name}`);
    });
}
