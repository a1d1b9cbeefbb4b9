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
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, delimiter, isAbsolute, join, resolve, sep } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { HostWritesError } from '../errors.ts';
import { codeRoot, packaged, selfCommand } from '../runtime/self.ts';
import { openStick } from '../stick/stick-root.ts';
import { processAlive } from '../stick/lock.ts';

/** The syscalls that can change a file's existence, contents or metadata, and what to follow. */
export const WRITE_SYSCALLS = [
  'open', 'openat', 'openat2', 'creat', 'mkdir', 'mkdirat', 'rmdir', 'unlink', 'unlinkat', 'rename', 'renameat', 'renameat2',
  'link', 'linkat', 'symlink', 'symlinkat', 'mknod', 'mknodat', 'truncate', 'ftruncate', 'chmod', 'fchmod', 'fchmodat',
  'chown', 'fchown', 'lchown', 'fchownat', 'utime', 'utimes', 'utimensat', 'futimesat', 'setxattr', 'lsetxattr', 'fsetxattr',
  'removexattr', 'lremovexattr', 'fremovexattr', 'bind', 'io_uring_setup', 'chdir', 'fchdir', 'execve',
] as const;

export interface TracedWrite {
  path: string;
  /** The syscall, or `open(write)` for an open that can write. */
  op: string;
  pid: number;
  program: string | undefined;
}

export type WriteClass = 'stick' | 'runtime' | 'device' | 'process' | 'checkout' | 'anonymous' | 'host';

export interface PathFinding {
  path: string;
  class: WriteClass;
  ops: string[];
  programs: string[];
  /** Whether the path exists now, after the session. */
  existsAfter: boolean;
}

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

// ---------------------------------------------------------------- parsing

/** Splits strace's argument list at top-level commas (strings, braces, brackets, <decorations>). */
export function splitArgs(text: string): string[] {
  const args: string[] = [];
  let depth = 0;
  let start = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    else if (c === '{' || c === '[' || c === '(' || c === '<') depth++;
    else if (c === '}' || c === ']' || c === ')' || c === '>') depth--;
    else if (c === ',' && depth === 0) {
      args.push(text.slice(start, i).trim());
      start = i + 1;
    }
  }
  const last = text.slice(start).trim();
  if (last) args.push(last);
  return args;
}

/** A C string as strace prints it (`"a\x20b"`), or undefined if it is not one. */
export function unquote(arg: string | undefined): string | undefined {
  if (!arg) return undefined;
  const match = /^"((?:[^"\\]|\\.)*)"(\.\.\.)?$/.exec(arg.trim());
  if (!match) return undefined;
  return match[1]!.replace(/\\(x[0-9a-fA-F]{2}|[0-7]{1,3}|.)/g, (_, esc: string) => {
    if (esc.startsWith('x')) return String.fromCharCode(parseInt(esc.slice(1), 16));
    if (/^[0-7]+$/.test(esc)) return String.fromCharCode(parseInt(esc, 8));
    return ({ n: '\n', t: '\t', r: '\r', v: '\v', f: '\f', '"': '"', '\\': '\\' } as Record<string, string>)[esc] ?? esc;
  });
}

/** The path strace -y appends to a descriptor (`3</tmp/x>`, `AT_FDCWD</home/me>`). */
export function fdPath(arg: string | undefined): string | undefined {
  const match = arg ? /<(.*)>$/.exec(arg.trim()) : null;
  return match ? match[1] : undefined;
}

const OPEN_WRITE_FLAGS = /\b(O_WRONLY|O_RDWR|O_CREAT|O_TRUNC|O_APPEND|O_TMPFILE)\b/;

/** Per traced process: where it is (cwd) and what it runs. */
export interface ProcessState {
  pid: number;
  cwd: string;
  program: string | undefined;
}

/** Which argument is a written path: ['path', i, dirfdIndex?] or ['fd', i]. */
type Target = ['path', number, number?] | ['fd', number];

const TARGETS: Record<string, Target[]> = {
  creat: [['path', 0]],
  mkdir: [['path', 0]],
  mkdirat: [['path', 1, 0]],
  rmdir: [['path', 0]],
  unlink: [['path', 0]],
  unlinkat: [['path', 1, 0]],
  rename: [['path', 0], ['path', 1]],
  renameat: [['path', 1, 0], ['path', 3, 2]],
  renameat2: [['path', 1, 0], ['path', 3, 2]],
  link: [['path', 1]],
  linkat: [['path', 3, 2]],
  symlink: [['path', 1]],
  symlinkat: [['path', 2, 1]],
  mknod: [['path', 0]],
  mknodat: [['path', 1, 0]],
  truncate: [['path', 0]],
  ftruncate: [['fd', 0]],
  chmod: [['path', 0]],
  fchmod: [['fd', 0]],
  fchmodat: [['path', 1, 0]],
  chown: [['path', 0]],
  lchown: [['path', 0]],
  fchown: [['fd', 0]],
  fchownat: [['path', 1, 0]],
  utime: [['path', 0]],
  utimes: [['path', 0]],
  futimesat: [['path', 1, 0]],
  setxattr: [['path', 0]],
  lsetxattr: [['path', 0]],
  fsetxattr: [['fd', 0]],
  removexattr: [['path', 0]],
  lremovexattr: [['path', 0]],
  fremovexattr: [['fd', 0]],
};

function resolveAgainst(base: string | undefined, path: string, state: ProcessState): string {
  if (isAbsolute(path)) return resolve(path);
  return resolve(base ?? state.cwd, path);
}

/** The writes one line of an strace -y -z trace records; updates the process state. */
export function writesOfLine(line: string, state: ProcessState): { writes: TracedWrite[]; ioUring?: string } {
  const open = line.indexOf('(');
  if (open <= 0) return { writes: [] };
  const name = line.slice(0, open);
  if (!/^[a-z0-9_]+$/.test(name)) return { writes: [] };
  // The argument list ends at the ") = " that precedes the result.
  const close = line.lastIndexOf(') = ');
  if (close < open) return { writes: [] };
  const args = splitArgs(line.slice(open + 1, close));
  const result = line.slice(close + 4).trim();
  if (result.startsWith('-1') || result.startsWith('?')) return { writes: [] };
  const write = (path: string, op: string): TracedWrite => ({ path, op, pid: state.pid, program: state.program });

  switch (name) {
    case 'execve': {
      const program = unquote(args[0]);
      if (program) state.program = program;
      return { writes: [] };
    }
    case 'chdir': {
      const path = unquote(args[0]);
      if (path) state.cwd = resolveAgainst(undefined, path, state);
      return { writes: [] };
    }
    case 'fchdir': {
      const path = fdPath(args[0]);
      if (path) state.cwd = path;
      return { writes: [] };
    }
    case 'io_uring_setup':
      return { writes: [], ioUring: args[1] ?? '' };
    case 'open':
    case 'openat':
    case 'openat2': {
      const flagsArg = name === 'open' ? args[1] : args[2];
      if (!flagsArg || !OPEN_WRITE_FLAGS.test(flagsArg)) return { writes: [] };
      const opened = fdPath(result);
      const given = unquote(name === 'open' ? args[0] : args[1]);
      const path = opened ?? (given === undefined ? undefined : resolveAgainst(name === 'open' ? undefined : fdPath(args[0]), given, state));
      // O_TMPFILE names the folder the unnamed file lives in (a later linkat naming it is traced too).
      return { writes: path ? [write(path, /\bO_TMPFILE\b/.test(flagsArg) ? 'open(tmpfile)' : 'open(write)')] : [] };
    }
    case 'utimensat': {
      // A NULL path means the descriptor itself.
      const given = unquote(args[1]);
      const path = given === undefined ? fdPath(args[0]) : resolveAgainst(fdPath(args[0]), given, state);
      return { writes: path ? [write(path, name)] : [] };
    }
    case 'bind': {
      const match = /sun_path="((?:[^"\\]|\\.)*)"/.exec(args[1] ?? '');
      // Abstract sockets (sun_path=@"…") are no file.
      if (!match || /sun_path=@/.test(args[1] ?? '')) return { writes: [] };
      return { writes: [write(resolveAgainst(undefined, unquote(`"${match[1]}"`)!, state), 'bind')] };
    }
    default: {
      const targets = TARGETS[name];
      if (!targets) return { writes: [] };
      const writes: TracedWrite[] = [];
      for (const target of targets) {
        if (target[0] === 'fd') {
          const path = fdPath(args[target[1]]);
          if (path) writes.push(write(path, name));
        } else {
          const given = unquote(args[target[1]]);
          if (given === undefined) continue;
          writes.push(write(resolveAgainst(target[2] === undefined ? undefined : fdPath(args[target[2]]), given, state), name));
        }
      }
      return { writes };
    }
  }
}

/** IORING_SETUP_SQPOLL: how libuv submits file operations through io_uring (invisible to the trace). */
export function ringCarriesFileIo(setupArgs: string): boolean {
  const flags = /flags=([^,]*)/.exec(setupArgs)?.[1] ?? '';
  if (flags.includes('IORING_SETUP_SQPOLL')) return true;
  const hex = /0x([0-9a-f]+)/i.exec(flags);
  return hex ? (parseInt(hex[1]!, 16) & 0x2) !== 0 : false;
}

// ---------------------------------------------------------------- classifying

export interface ClassifyContext {
  /** The stick, as given and as its real path. */
  stickRoots: string[];
  /** Where the private runtime directory is made (XDG_RUNTIME_DIR, TMPDIR). */
  runtimeBases: string[];
  /** Processes traced: their /proc entries are their own. */
  pids: ReadonlySet<number>;
  /** Running from a checkout: its .cache/ (Node's compile cache) is the developer's, not a host's. */
  checkoutCache: string | undefined;
}

const DEVICE_FILES = /^\/dev\/(null|zero|full|random|urandom|tty|ptmx|kvm|pts\/\d+|tty\w*|fd\/\d+|stdin|stdout|stderr|net\/tun|vhost-net|vhost-vsock)$/;

function under(path: string, root: string): boolean {
  return path === root || path.startsWith(root.endsWith(sep) ? root : root + sep);
}

/** The private runtime directory `path` is in (or is), if it is one: `<base>/pocketvm-XXXXXX`. */
export function runtimeDirOf(path: string, bases: readonly string[]): string | undefined {
  for (const base of bases) {
    if (!under(path, base) || path === base) continue;
    const first = path.slice(base.length).split(sep).filter(Boolean)[0];
    if (first && /^pocketvm-[A-Za-z0-9]{6}$/.test(first)) return join(base, first);
  }
  return undefined;
}

/**
 * An O_TMPFILE file in /dev/shm (guest RAM, src/vmm/guest-ram.ts), as its
 * open names it (the folder) or its descriptor does (`#<inode> (deleted)`):
 * memory only, never a name anyone could open, gone with its last
 * descriptor, like a memfd.
 */
const UNNAMED_SHM_FILE = /^\/dev\/shm\/#\d+ \(deleted\)$/;
const SHM = '/dev/shm';

export function classify(write: Pick<TracedWrite, 'path' | 'op'>, context: ClassifyContext): WriteClass {
  const path = write.path.replace(/ \(deleted\)$/, '');
  if (!path.startsWith('/') || path.startsWith('/memfd:') || UNNAMED_SHM_FILE.test(write.path)) return 'anonymous';
  if (write.op === 'open(tmpfile)' && (path === SHM || path === `${SHM}/`)) return 'anonymous';
  if (context.stickRoots.some((root) => under(path, root))) return 'stick';
  if (runtimeDirOf(path, context.runtimeBases)) return 'runtime';
  if (write.op === 'open(write)' && DEVICE_FILES.test(path)) return 'device';
  const proc = /^\/proc\/(self|thread-self|\d+)\//.exec(path);
  if (proc && (proc[1] === 'self' || proc[1] === 'thread-self' || context.pids.has(Number(proc[1])))) return 'process';
  if (context.checkoutCache && under(path, context.checkoutCache)) return 'checkout';
  return 'host';
}

/** Reads every per-process trace file under `dir` (strace -ff) into writes. */
export async function readTraces(dir: string, defaultCwd: string): Promise<{ writes: TracedWrite[]; pids: Set<number>; programs: Map<number, string | undefined>; ioUring: string[] }> {
  const writes: TracedWrite[] = [];
  const pids = new Set<number>();
  const programs = new Map<number, string | undefined>();
  const ioUring: string[] = [];
  for (const name of (await readdir(dir)).sort()) {
    const pid = Number(name.slice(name.lastIndexOf('.') + 1));
    if (!Number.isInteger(pid)) continue;
    pids.add(pid);
    const state: ProcessState = { pid, cwd: defaultCwd, program: undefined };
    for (const line of (await readFile(join(dir, name), 'utf8')).split('\n')) {
      const found = writesOfLine(line, state);
      writes.push(...found.writes);
      if (found.ioUring !== undefined) ioUring.push(`${state.program ?? `pid ${pid}`}: ${found.ioUring}`);
    }
    programs.set(pid, state.program);
  }
  return { writes, pids, programs, ioUring };
}

/** Groups writes by path and classifies them. */
export function findings(writes: readonly TracedWrite[], context: ClassifyContext, exists: (path: string) => boolean = existsSync): PathFinding[] {
  const byPath = new Map<string, PathFinding>();
  for (const write of writes) {
    const path = write.path.replace(/ \(deleted\)$/, '');
    let finding = byPath.get(path);
    if (!finding) {
      finding = { path, class: classify(write, context), ops: [], programs: [], existsAfter: false };
      byPath.set(path, finding);
    } else if (finding.class === 'device' && classify(write, context) === 'host') {
      finding.class = 'host';
    }
    if (!finding.ops.includes(write.op)) finding.ops.push(write.op);
    const program = write.program ? basename(write.program) : `pid ${write.pid}`;
    if (!finding.programs.includes(program)) finding.programs.push(program);
  }
  for (const finding of byPath.values()) finding.existsAfter = exists(finding.path);
  return [...byPath.values()].sort((a, b) => a.path.localeCompare(b.path));
}

// ---------------------------------------------------------------- running

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
export const GUEST_WRITES = 'dd if=/dev/urandom of="$HOME/.pocketvm-audit" bs=1M count=4 conv=fsync 2>/dev/null && sha256sum "$HOME/.pocketvm-audit" && rm -f "$HOME/.pocketvm-audit" && sync';

function straceArgs(prefix: string, seccomp: boolean): string[] {
  return ['-f', '-ff', '-qq', '-z', '-y', '-s', '4096', ...(seccomp ? ['--seccomp-bpf'] : []), '-e', 'signal=none', '-e', `trace=${WRITE_SYSCALLS.join(',')}`, '-o', prefix, '--'];
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
  if (!strace) throw new HostWritesError('launcher audit needs strace, which is not installed here', { hint: 'install it (Debian/Ubuntu: sudo apt-get install strace) and run the audit again' });
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
  const session: ResultPromise = execa(strace, traced('run', runArgs), { ...common, stdin: options.stdinToRun ? 'inherit' : 'ignore', stdout: 'pipe', buffer: false });
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
      resolveStep({ exitCode: result.exitCode ?? -1, ...(firstJson(runOutput) === undefined ? { error: `run ended without a status (${result.signal ?? `exit ${result.exitCode}`})` } : {}) });
    });
  });
  steps.push({ step: 'run', command: runArgs, exitCode: runStatus.exitCode, ms: Math.round(performance.now() - started), ...(runStatus.error ? { error: runStatus.error } : {}) });

  const runStep = async (step: string, args: string[]) => {
    say(`${step}: ${args.join(' ')} (traced)`);
    const begun = performance.now();
    const result = await execa(strace, traced(step, args), { ...common, stdin: 'ignore', stdout: 'pipe', timeout: timeoutMs });
    const failed = result.exitCode !== 0;
    steps.push({ step, command: args, exitCode: result.exitCode ?? -1, ms: Math.round(performance.now() - begun), ...(failed ? { error: String(result.stderr || result.stdout).trim().split('\n').at(-1) ?? `exit ${result.exitCode}` } : {}) });
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
  for (const ring of ioUring) if (ringCarriesFileIo(ring)) incomplete.push(`an io_uring ring that can carry file I/O was set up (${ring.slice(0, 120)}): writes through it are not in the trace`);
  const realStick = realOrSame(options.stickRoot);
  const runtimeBases = [...new Set([process.env['XDG_RUNTIME_DIR'], tmpdir()].filter((b): b is string => Boolean(b)).flatMap((b) => [resolve(b), realOrSame(b)]))];
  const context: ClassifyContext = {
    stickRoots: [...new Set([resolve(options.stickRoot), realStick])],
    runtimeBases,
    pids,
    checkoutCache: packaged ? undefined : join(codeRoot, '.cache'),
  };
  const all = findings(writes, context);
  const runtimeDirs = [...new Set(all.filter((f) => f.class === 'runtime').map((f) => runtimeDirOf(f.path, runtimeBases)!))].map((path) => ({ path, gone: !existsSync(path) }));
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
        ...(hostWrites.length > 0 ? [`${hostWrites.length} host path${hostWrites.length === 1 ? '' : 's'} written: ${hostWrites.map((f) => f.path).join(', ')}`] : []),
        ...lingering.map((r) => `the private runtime directory ${r.path} is still there`),
        ...leftoverProcesses.map((p) => `${p.program ?? 'a traced process'} (pid ${p.pid}) is still running`),
        ...failedSteps.map((s) => `${s.step} failed (exit ${s.exitCode}${s.error ? `: ${s.error}` : ''})`),
        ...incomplete,
      ].join('; ');
  if (options.keepTrace) say(`traces kept in ${traceDir}`);
  else await rm(traceDir, { recursive: true, force: true });
  return report;
}
