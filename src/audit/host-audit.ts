// `launcher audit`: does a whole session leave the host as it found it? It
// runs one, the way a person would (log in and boot, write in the guest, end
// it), with every launcher process and every child of theirs (the detached
// session, setpriv, QEMU, qemu-img, lsblk…) traced by strace, and lists every
// path outside the stick that any of them wrote: created, opened for writing,
// truncated, removed, renamed, linked, chmod'ed, chown'ed, touched, or bound
// as a socket.
//
// Why a trace and not a read-only mount namespace: a namespace where
// everything but the stick is read-only makes a write *fail*, which changes
// the session (the control socket could not even be made) and says nothing
// about a file made and removed again; the trace watches the real session
// unchanged, sees transient files too (the private control directory is
// listed, and must be gone afterwards), needs no root, and names the program
// that wrote. Its limits, said in the report: writes by other processes on
// the launcher's behalf (the host keychain service: the opt-in exception,
// which the audit does not use) are not the launcher's own syscalls, and
// file I/O submitted through an io_uring ring would bypass it (libuv's file
// ring is off unless UV_USE_IO_URING=1; the audit sets it to 0 and reports
// any ring that could carry file I/O).
import { existsSync, realpathSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, delimiter, join, resolve } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { HostWritesError } from '../errors.ts';
import { codeRoot, packaged, selfCommand } from '../runtime/self.ts';
import { openStick } from '../stick/stick-root.ts';
import { processAlive } from '../stick/lock.ts';
import { type ClassifyContext, findings, type PathFinding, runtimeDirOf } from './classify-writes.ts';
import { readTraces, ringCarriesFileIo, WRITE_SYSCALLS } from './strace-writes.ts';

export interface AuditStep {
  step: string;
  command: string[];
  exitCode: number;
  ms: number;
  error?: string;
}

export interface AuditReport {
  stick: string;
  tracer: string;
  steps: AuditStep[];
  /** Every host path written outside the stick, each a failure of the audit. */
  hostWrites: PathFinding[];
  /** The session's private runtime directories (the control socket's): allowed if gone afterwards. */
  runtime: Array<{ path: string; gone: boolean }>;
  /** Written but not host files: devices (/dev/null, the terminal, /dev/kvm), the processes' own /proc entries. */
  allowed: PathFinding[];
  stickWrites: number;
  tracedProcesses: number;
  programs: string[];
  /** Traced processes still alive after the session (a QEMU left behind would be one). */
  leftoverProcesses: Array<{ pid: number; program: string | undefined }>;
  /** Why the audit may have missed something, if it might have. */
  incomplete: string[];
  keychain: string;
  ok: boolean;
  summary: string;
}

export function findStrace(env: NodeJS.ProcessEnv = process.env): string | undefined {
  for (const dir of (env['PATH'] ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, 'strace');
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}

export interface AuditOptions {
  stickRoot: string;
  guest: string;
  /** Login flags passed to `run` (--user NAME, --passphrase-stdin). */
  loginArgs: string[];
  /** Whether the audit's own stdin (a passphrase, a terminal) goes to `run`. */
  stdinToRun: boolean;
  /** The command that ends the session: `eject` where it exists, else `stop`. */
  endCommand: string[];
  /** Launcher narration goes to this process's stderr (not with --json). */
  narrate: boolean;
  keepTrace?: boolean;
  onStep?: (message: string) => void;
  /** How long a session may take to boot, and to end after the end command. */
  timeoutMs?: number;
}

/** What the guest does during the audit: write, fsync and remove a file in the user's home. */
export const GUEST_WRITES =
  'dd if=/dev/urandom of="$HOME/.pocketvm-audit" bs=1M count=4 conv=fsync 2>/dev/null && sha256sum "$HOME/.pocketvm-audit" && rm -f "$HOME/.pocketvm-audit" && sync';

function straceArgs(prefix: string, seccomp: boolean): string[] {
  return [
    '-f',
    '-ff',
    '-qq',
    '-z',
    '-y',
    '-s',
    '4096',
    ...(seccomp ? ['--seccomp-bpf'] : []),
    '-e',
    'signal=none',
    '-e',
    `trace=${WRITE_SYSCALLS.join(',')}`,
    '-o',
    prefix,
    '--',
  ];
}

async function supportsSeccompFilter(strace: string): Promise<boolean> {
  const probe = await execa(strace, ['-f', '--seccomp-bpf', '-qq', '-e', 'trace=openat', '-o', '/dev/null', '--', 'true'], { reject: false, stdin: 'ignore' });
  return probe.exitCode === 0;
}

function realOrSame(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return resolve(path);
  }
}

/** The JSON document a `--json` command prints, once it is complete. */
function firstJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

export async function runAudit(options: AuditOptions): Promise<AuditReport> {
  const strace = findStrace();
  if (!strace)
    throw new HostWritesError('launcher audit needs strace, which is not installed here', {
      hint: 'install it (Debian/Ubuntu: sudo apt-get install strace) and run the audit again',
    });
  const say = options.onStep ?? (() => {});
  // The traces go on the stick: a folder that is not one gets nothing written.
  const layout = await openStick(options.stickRoot);
  const traceDir = join(layout.runDir, `audit-${new Date().toISOString().replace(/[-:.]/g, '')}`);
  await mkdir(traceDir, { recursive: true });
  const seccomp = await supportsSeccompFilter(strace);
  const self = selfCommand();
  const cwd = process.cwd();
  // libuv's file-operation ring would hide file I/O from the trace; it is off by default: make sure.
  const env = { UV_USE_IO_URING: '0' };
  const timeoutMs = options.timeoutMs ?? 300_000;
  const steps: AuditStep[] = [];
  const incomplete: string[] = [];
  const traced = (step: string, args: string[]) => [...straceArgs(join(traceDir, step), seccomp), self.command, ...self.args, ...args];
  const common = { reject: false, env, extendEnv: true, cwd, stderr: options.narrate ? ('inherit' as const) : ('pipe' as const) };

  // 1. Log in and boot. Its tracer lives on with the detached session, so
  // the step ends when its JSON status (or error) is complete.
  const runArgs = ['run', '--detach', '--json', '--stick', options.stickRoot, '--guest', options.guest, ...options.loginArgs];
  say(`run: ${runArgs.join(' ')} (traced)`);
  const started = performance.now();
  const session: ResultPromise = execa(strace, traced('run', runArgs), {
    ...common,
    stdin: options.stdinToRun ? 'inherit' : 'ignore',
    stdout: 'pipe',
    buffer: false,
  });
  let runOutput = '';
  const runStatus = await new Promise<{ exitCode: number; error?: string }>((resolveStep) => {
    const timer = setTimeout(() => resolveStep({ exitCode: -1, error: `no status within ${timeoutMs / 1000} s` }), timeoutMs);
    session.stdout?.on('data', (chunk: Buffer) => {
      runOutput += chunk.toString('utf8');
      const json = firstJson(runOutput) as { error?: { code?: number; message?: string } } | undefined;
      if (json === undefined) return;
      clearTimeout(timer);
      resolveStep(json.error ? { exitCode: json.error.code ?? 1, error: json.error.message ?? 'failed' } : { exitCode: 0 });
    });
    void session.then((result) => {
      clearTimeout(timer);
      resolveStep({
        exitCode: result.exitCode ?? -1,
        ...(firstJson(runOutput) === undefined ? { error: `run ended without a status (${result.signal ?? `exit ${result.exitCode}`})` } : {}),
      });
    });
  });
  steps.push({
    step: 'run',
    command: runArgs,
    exitCode: runStatus.exitCode,
    ms: Math.round(performance.now() - started),
    ...(runStatus.error ? { error: runStatus.error } : {}),
  });

  const runStep = async (step: string, args: string[]) => {
    say(`${step}: ${args.join(' ')} (traced)`);
    const begun = performance.now();
    const result = await execa(strace, traced(step, args), { ...common, stdin: 'ignore', stdout: 'pipe', timeout: timeoutMs });
    const failed = result.exitCode !== 0;
    steps.push({
      step,
      command: args,
      exitCode: result.exitCode ?? -1,
      ms: Math.round(performance.now() - begun),
      ...(failed
        ? {
            error:
              String(result.stderr || result.stdout)
                .trim()
                .split('\n')
                .at(-1) ?? `exit ${result.exitCode}`,
          }
        : {}),
    });
  };
  if (runStatus.exitCode === 0) {
    // 2. The guest writes (to the user's encrypted home on the stick).
    await runStep('guest-writes', ['exec', '--stick', options.stickRoot, '--guest', options.guest, '--', 'sh', '-c', GUEST_WRITES]);
    // 3. The session ends the way a person ends it.
    await runStep(options.endCommand[0]!, [...options.endCommand, '--stick', options.stickRoot]);
  }
  // The session's tracer ends with the session.
  const ended = await Promise.race([session.then(() => true), new Promise<false>((r) => setTimeout(r, 60_000, false).unref())]);
  if (!ended) {
    incomplete.push('the session did not end within 60 s of the end command; the trace stops here');
    session.kill('SIGTERM');
    await session.catch(() => {});
  }

  // What the trace says.
  const { writes, pids, programs, ioUring } = await readTraces(traceDir, cwd);
  for (const ring of ioUring)
    if (ringCarriesFileIo(ring))
      incomplete.push(`an io_uring ring that can carry file I/O was set up (${ring.slice(0, 120)}): writes through it are not in the trace`);
  const realStick = realOrSame(options.stickRoot);
  const runtimeBases = [
    ...new Set([process.env['XDG_RUNTIME_DIR'], tmpdir()].filter((b): b is string => Boolean(b)).flatMap((b) => [resolve(b), realOrSame(b)])),
  ];
  const context: ClassifyContext = {
    stickRoots: [...new Set([resolve(options.stickRoot), realStick])],
    runtimeBases,
    pids,
    checkoutCache: packaged ? undefined : join(codeRoot, '.cache'),
  };
  const all = findings(writes, context);
  const runtimeDirs = [...new Set(all.filter((f) => f.class === 'runtime').map((f) => runtimeDirOf(f.path, runtimeBases)!))].map((path) => ({
    path,
    gone: !existsSync(path),
  }));
  const leftoverProcesses = [...pids].filter((pid) => processAlive(pid)).map((pid) => ({ pid, program: programs.get(pid) }));
  const hostWrites = all.filter((f) => f.class === 'host');
  const report: AuditReport = {
    stick: options.stickRoot,
    tracer: `strace${seccomp ? ' --seccomp-bpf' : ''}`,
    steps,
    hostWrites,
    runtime: runtimeDirs,
    allowed: all.filter((f) => f.class === 'device' || f.class === 'process' || f.class === 'checkout'),
    stickWrites: all.filter((f) => f.class === 'stick').length,
    tracedProcesses: pids.size,
    programs: [...new Set([...programs.values()].filter((p): p is string => Boolean(p)).map((p) => basename(p)))].sort(),
    leftoverProcesses,
    incomplete,
    keychain: 'not used: the host keychain (--remember-on-this-host) is the one allowed exception, opt-in, and the audit logs in without it',
    ok: false,
    summary: '',
  };
  const failedSteps = steps.filter((s) => s.exitCode !== 0);
  const lingering = runtimeDirs.filter((r) => !r.gone);
  report.ok = hostWrites.length === 0 && lingering.length === 0 && leftoverProcesses.length === 0 && failedSteps.length === 0 && incomplete.length === 0;
  report.summary = report.ok
    ? `no host writes: ${pids.size} processes traced (${report.programs.join(', ')}); ${report.stickWrites} paths written on the stick; ${runtimeDirs.length} private runtime director${runtimeDirs.length === 1 ? 'y' : 'ies'}, gone afterwards`
    : [
        ...(hostWrites.length > 0
          ? [`${hostWrites.length} host path${hostWrites.length === 1 ? '' : 's'} written: ${hostWrites.map((f) => f.path).join(', ')}`]
          : []),
        ...lingering.map((r) => `the private runtime directory ${r.path} is still there`),
        ...leftoverProcesses.map((p) => `${p.program ?? 'a traced process'} (pid ${p.pid}) is still running`),
        ...failedSteps.map((s) => `${s.step} failed (exit ${s.exitCode}${s.error ? `: ${s.error}` : ''})`),
        ...incomplete,
      ].join('; ');
  if (options.keepTrace) say(`traces kept in ${traceDir}`);
  else await rm(traceDir, { recursive: true, force: true });
  return report;
}
