// Reading strace's output (`strace -ff -y -z`, one file a process) into the
// writes it records: which syscall changed which path, from which process
// and program. Paths are resolved against each process's working directory,
// which the trace follows (chdir, fchdir); an io_uring ring that could carry
// file I/O is reported, since its writes would not be syscalls (host-audit.ts).
import { readdir, readFile } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';

/** The syscalls that can change a file's existence, contents or metadata, and what to follow. */
export const WRITE_SYSCALLS = [
  'open',
  'openat',
  'openat2',
  'creat',
  'mkdir',
  'mkdirat',
  'rmdir',
  'unlink',
  'unlinkat',
  'rename',
  'renameat',
  'renameat2',
  'link',
  'linkat',
  'symlink',
  'symlinkat',
  'mknod',
  'mknodat',
  'truncate',
  'ftruncate',
  'chmod',
  'fchmod',
  'fchmodat',
  'chown',
  'fchown',
  'lchown',
  'fchownat',
  'utime',
  'utimes',
  'utimensat',
  'futimesat',
  'setxattr',
  'lsetxattr',
  'fsetxattr',
  'removexattr',
  'lremovexattr',
  'fremovexattr',
  'bind',
  'io_uring_setup',
  'chdir',
  'fchdir',
  'execve',
] as const;

export interface TracedWrite {
  path: string;
  /** The syscall, or `open(write)` for an open that can write. */
  op: string;
  pid: number;
  program: string | undefined;
}

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
  rename: [
    ['path', 0],
    ['path', 1],
  ],
  renameat: [
    ['path', 1, 0],
    ['path', 3, 2],
  ],
  renameat2: [
    ['path', 1, 0],
    ['path', 3, 2],
  ],
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

/** Reads every per-process trace file under `dir` (strace -ff) into writes. */
export async function readTraces(
  dir: string,
  defaultCwd: string,
): Promise<{ writes: TracedWrite[]; pids: Set<number>; programs: Map<number, string | undefined>; ioUring: string[] }> {
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
