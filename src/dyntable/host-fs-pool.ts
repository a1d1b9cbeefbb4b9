// Host file-system calls that may never return, kept off the launcher's
// thread.
//
// A served host folder on a network or FUSE mount can stop answering (a
// server gone, a FUSE daemon stopped): every call into it then blocks until
// it comes back, maybe forever. On the launcher's only thread that would
// freeze everything else it does (presence monitor, control socket, QMP, the
// registry channel); in libuv's thread pool it would take the pool's four
// threads, which the rest of the launcher's file I/O needs.
//
// So paths on such mounts are served by worker threads of their own doing
// synchronous calls, and every call has a deadline: past it, the request
// fails with EIO, the worker is left to its stuck call (it ends when the call
// returns; at most MAX_STUCK_WORKERS are left at once, beyond that calls fail
// at once) and its mount is taken as hung for a while, so the guest's next
// requests there fail fast instead of each waiting out the deadline.
//
// Paths on local file systems keep their synchronous calls on the main
// thread (confined-fs.ts): a metadata lookup on a local disk takes
// microseconds, a trip to any other thread tens, a third of a 9P round
// trip under TCG. Which mounts are remote or FUSE comes from
// /proc/self/mountinfo (procfs: it never blocks), read again every
// MOUNT_REFRESH_MS. Other hosts than Linux: no mount table is read and
// every path is local (a known gap, docs/tables-and-namespace.md).
//
// The worker's code is a string run with `eval` (the self-contained
// executable has no module file to start a worker from), like gcm-worker.ts.
import { readFileSync } from 'node:fs';
import type { BigIntStats } from 'node:fs';
import { lstatSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { platformOf } from '../platform/current.ts';
import { Errno, ErrnoError } from '../ninep/backend.ts';

/** How long one host call may take before its request fails with EIO. */
export const HOST_CALL_TIMEOUT_MS = 5000;
/** How long a mount that missed a deadline answers EIO at once (then it is tried again). */
export const HUNG_BACKOFF_MS = 5000;
/** Workers left in a stuck call at once; beyond that, calls to slow mounts fail at once. */
export const MAX_STUCK_WORKERS = 4;
/** Workers serving calls to slow mounts. */
const POOL_SIZE = 2;
const MOUNT_REFRESH_MS = 2000;

/** File-system types whose calls can block indefinitely (network, FUSE, cluster). */
const SLOW_TYPES =
  /^(fuse(\..*)?|fuseblk|nfs4?|cifs|smb3?|smbfs|ncpfs|9p|ceph|glusterfs|lustre|gfs2|ocfs2|afs|davfs|coda|sshfs|virtiofs|beegfs|gpfs|orangefs|pvfs2)$/;

const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const fs = require('node:fs');
const path = require('node:path');
const dirs = new Map();
const errOf = (e) => ({ code: e && e.code, errno: e && typeof e.errno === 'number' ? -Math.abs(e.errno) : undefined, message: String(e && e.message) });
const ops = {
  lstat: (a) => fs.lstatSync(a.path, { bigint: true }),
  lstatMany: (a) => a.names.map((n) => { try { return fs.lstatSync(path.join(a.dir, n), { bigint: true }); } catch { return null; } }),
  open: (a) => fs.openSync(a.path, a.flags),
  fstat: (a) => fs.fstatSync(a.fd, { bigint: true }),
  read: (a) => { const b = Buffer.from(new ArrayBuffer(a.length)); const n = fs.readSync(a.fd, b, 0, a.length, a.position); return { bytes: b.buffer, n, transfer: true }; },
  write: (a) => fs.writeSync(a.fd, Buffer.from(a.data), 0, a.data.byteLength, a.position),
  fsync: (a) => (a.datasync ? fs.fdatasyncSync(a.fd) : fs.fsyncSync(a.fd)),
  close: (a) => fs.closeSync(a.fd),
  readlink: (a) => fs.readlinkSync(a.path),
  realpath: (a) => fs.realpathSync(a.path),
  statfs: (a) => fs.statfsSync(a.path, { bigint: true }),
  readdir: (a) => fs.readdirSync(a.path),
  opendir: (a) => { dirs.set(a.id, fs.opendirSync(a.path, { bufferSize: 32 })); return a.id; },
  dirRead: (a) => { const d = dirs.get(a.id); const out = []; if (!d) return null; while (out.length < a.max) { const e = d.readSync(); if (e === null) { d.closeSync(); dirs.delete(a.id); return { names: out, done: true }; } out.push(e.name); } return { names: out, done: false }; },
  dirClose: (a) => { const d = dirs.get(a.id); dirs.delete(a.id); if (d) d.closeSync(); },
};
parentPort.on('message', (job) => {
  try {
    const value = ops[job.op](job.args);
    if (value && value.transfer) parentPort.postMessage({ id: job.id, ok: true, value: { bytes: value.bytes, n: value.n } }, [value.bytes]);
    else parentPort.postMessage({ id: job.id, ok: true, value });
  } catch (e) {
    parentPort.postMessage({ id: job.id, ok: false, error: errOf(e) });
  }
});
`;

interface Job {
  id: number;
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
  mount: string;
}

class PoolWorker {
  readonly worker: Worker;
  readonly jobs = new Map<number, Job>();
  stuck = false;

  constructor(onExit: (w: PoolWorker) => void) {
    this.worker = new Worker(WORKER_SOURCE, { eval: true });
    this.worker.on('message', (m: { id: number; ok: boolean; value?: unknown; error?: { code?: string; errno?: number; message: string } }) => {
      const job = this.jobs.get(m.id);
      if (!job) return;
      this.jobs.delete(m.id);
      this.holdProcess();
      clearTimeout(job.timer);
      if (m.ok) job.resolve(m.value);
      else job.reject(ErrnoError.fromNode(Object.assign(new Error(m.error?.message ?? 'host call failed'), { code: m.error?.code, errno: m.error?.errno })));
    });
    const fail = () => {
      for (const job of this.jobs.values()) {
        clearTimeout(job.timer);
        job.reject(new ErrnoError(Errno.EIO, 'the host file-system worker ended'));
      }
      this.jobs.clear();
      this.holdProcess();
      onExit(this);
    };
    this.worker.on('error', fail);
    this.worker.on('exit', fail);
    this.holdProcess();
  }

  /**
   * A call in progress keeps the launcher alive, as a libuv request would;
   * an idle or stuck worker never does (a launcher left with one never
   * reached its exit: a session stayed alive after a yank). Called after
   * the listeners are added, as adding a 'message' listener refs the
   * worker's port again, and after terminate(), which refs it too.
   */
  holdProcess(): void {
    if (this.jobs.size > 0 && !this.stuck) this.worker.ref();
    else this.worker.unref();
  }
}

/** A mount point of a remote or FUSE file system. */
interface SlowMount {
  point: string;
  type: string;
  hungUntil: number;
}

/** Unescape a mountinfo field (\\040 for a space, and so on). */
function unescapeMount(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** The remote and FUSE mounts of this host, from /proc/self/mountinfo. */
export function readSlowMounts(text: string): Array<{ point: string; type: string }> {
  const out: Array<{ point: string; type: string }> = [];
  for (const line of text.split('\n')) {
    const dash = line.indexOf(' - ');
    if (dash < 0) continue;
    const fields = line.slice(0, dash).split(' ');
    const type = line.slice(dash + 3).split(' ')[0] ?? '';
    if (fields[4] && SLOW_TYPES.test(type)) out.push({ point: unescapeMount(fields[4]), type });
  }
  return out;
}

let bigintStatsPrototype: object | undefined;

/** A BigIntStats again after a trip through postMessage (which keeps only own fields). */
function revive(st: object): BigIntStats {
  bigintStatsPrototype ??= Object.getPrototypeOf(lstatSync('/', { bigint: true })) as object;
  return Object.setPrototypeOf(st, bigintStatsPrototype) as BigIntStats;
}

export class HostFsPool {
  static #shared: HostFsPool | undefined;
  /** The process's pool (host folders of every backend share it). */
  static shared(): HostFsPool {
    HostFsPool.#shared ??= new HostFsPool();
    return HostFsPool.#shared;
  }

  readonly #workers: PoolWorker[] = [];
  /** Descriptors open on a worker. */
  readonly #fds = new Map<number, PoolWorker>();
  /** Directories open on a worker, by id. */
  readonly #dirs = new Map<number, PoolWorker>();
  #stuck = 0;
  #exitHook = false;
  #next = 0;
  #nextJob = 1;
  #mounts: SlowMount[] = [];
  #mountsReadAt = -Infinity;
  readonly #timeoutMs: number;

  constructor(options: { timeoutMs?: number } = {}) {
    this.#timeoutMs = options.timeoutMs ?? HOST_CALL_TIMEOUT_MS;
  }

  /** Read the mount table now (a served root was just opened: it may be a mount made a moment ago). */
  refreshMounts(): void {
    this.#mountsReadAt = -Infinity;
    this.#refreshMounts();
  }

  #refreshMounts(): void {
    if (!platformOf()?.procMountinfo) return;
    const now = performance.now();
    if (now - this.#mountsReadAt < MOUNT_REFRESH_MS) return;
    this.#mountsReadAt = now;
    let text: string;
    try {
      text = readFileSync('/proc/self/mountinfo', 'utf8');
    } catch {
      return;
    }
    const old = new Map(this.#mounts.map((m) => [m.point, m]));
    this.#mounts = readSlowMounts(text).map((m) => ({ ...m, hungUntil: old.get(m.point)?.hungUntil ?? 0 }));
  }

  /** The remote/FUSE mount `hostPath` is on (the deepest), or undefined for a local path. */
  #mountOf(hostPath: string): SlowMount | undefined {
    this.#refreshMounts();
    let found: SlowMount | undefined;
    for (const m of this.#mounts) {
      const inside = hostPath === m.point || hostPath.startsWith(m.point === '/' ? '/' : `${m.point}/`);
      if (inside && (!found || m.point.length > found.point.length)) found = m;
    }
    return found;
  }

  /** Whether calls for `hostPath` must go through the pool (it may be on a mount that hangs). */
  isSlow(hostPath: string): boolean {
    return this.#mountOf(hostPath) !== undefined;
  }

  /** Whether a path below a mount can hide a slower one: any slow mount at all. */
  get anySlow(): boolean {
    this.#refreshMounts();
    return this.#mounts.length > 0;
  }

  /**
   * A thread stuck in a call to a stopped FUSE daemon or a dead server
   * cannot be joined, and Node joins every worker thread before the process
   * ends: the launcher would never exit. Only a fatal signal ends such a
   * call. So when the launcher is done (its event loop is empty) while a
   * worker is still stuck, its output is flushed and it ends itself with
   * SIGKILL, which the kernel delivers to the stuck thread too (docs/tables-and-namespace.md: its
   * exit status is then 137). Stuck workers are unref'd (holdProcess), so
   * that moment does come.
   */
  #endByKillWhileStuck(): void {
    if (this.#exitHook) return;
    this.#exitHook = true;
    process.once('beforeExit', () => {
      if (this.#stuck === 0) return;
      let pending = 2;
      const done = () => {
        if (--pending === 0) process.kill(process.pid, 'SIGKILL');
      };
      process.stdout.write('', done);
      process.stderr.write('', done);
    });
    // process.exit() and an uncaught exception skip beforeExit and would
    // wait on the stuck thread too (seen hanging one time in three).
    process.once('exit', () => {
      if (this.#stuck > 0) process.kill(process.pid, 'SIGKILL');
    });
  }

  #worker(): PoolWorker | undefined {
    while (this.#workers.length < POOL_SIZE && this.#stuck < MAX_STUCK_WORKERS) {
      const w = new PoolWorker((gone) => {
        const i = this.#workers.indexOf(gone);
        if (i >= 0) this.#workers.splice(i, 1);
        if (gone.stuck) this.#stuck--;
      });
      this.#workers.push(w);
    }
    if (this.#workers.length === 0) return undefined;
    // The least busy, round robin among equals.
    this.#next = (this.#next + 1) % this.#workers.length;
    let best = this.#workers[this.#next]!;
    for (const w of this.#workers) if (w.jobs.size < best.jobs.size) best = w;
    return best;
  }

  /** Run `op` on a pool worker with the deadline; `where` is the host path it touches (for the hung mount). */
  call<T>(op: string, args: Record<string, unknown>, where: string, transfer: ArrayBuffer[] = [], pinned?: PoolWorker): Promise<T> {
    const mount = this.#mountOf(where);
    const now = performance.now();
    if (mount && mount.hungUntil > now) return Promise.reject(new ErrnoError(Errno.EIO, `${mount.point} (${mount.type}) does not answer`));
    if (pinned && (pinned.stuck || !this.#workers.includes(pinned)))
      return Promise.reject(new ErrnoError(Errno.EIO, 'the host file-system worker holding this directory is gone'));
    const w = pinned ?? this.#worker();
    if (!w) return Promise.reject(new ErrnoError(Errno.EIO, `host file systems do not answer (${MAX_STUCK_WORKERS} calls stuck)`));
    const id = this.#nextJob++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        // The call is stuck in the kernel: the worker stays in it. Its other
        // jobs fail too; the mount answers EIO at once for a while.
        if (mount) mount.hungUntil = performance.now() + HUNG_BACKOFF_MS;
        w.stuck = true;
        this.#stuck++;
        this.#endByKillWhileStuck();
        const i = this.#workers.indexOf(w);
        if (i >= 0) this.#workers.splice(i, 1);
        for (const job of w.jobs.values()) {
          clearTimeout(job.timer);
          job.reject(new ErrnoError(Errno.EIO, `${mount?.point ?? where}: a host call took longer than ${this.#timeoutMs} ms`));
        }
        w.jobs.clear();
        void w.worker.terminate().catch(() => {});
        w.holdProcess();
      }, this.#timeoutMs);
      timer.unref();
      w.jobs.set(id, { id, resolve: resolve as (v: unknown) => void, reject, timer, mount: mount?.point ?? '' });
      w.worker.postMessage({ id, op, args }, transfer);
      w.holdProcess();
    });
  }

  // Typed calls.

  async lstat(path: string): Promise<BigIntStats> {
    return revive(await this.call<object>('lstat', { path }, path));
  }

  async lstatMany(dir: string, names: readonly string[]): Promise<Array<BigIntStats | undefined>> {
    const stats = await this.call<Array<object | null>>('lstatMany', { dir, names }, dir);
    return stats.map((st) => (st === null ? undefined : revive(st)));
  }

  /**
   * open(2) on a worker. The descriptor stays with that worker: Node closes
   * a worker's descriptors when it ends, so once it is gone (left in a stuck
   * call) the number may name another file and is never used again.
   */
  async open(path: string, flags: number): Promise<number> {
    const w = this.#worker();
    if (!w) throw new ErrnoError(Errno.EIO, `host file systems do not answer (${MAX_STUCK_WORKERS} calls stuck)`);
    const fd = await this.call<number>('open', { path, flags }, path, [], w);
    this.#fds.set(fd, w);
    return fd;
  }

  #owner(fd: number): PoolWorker {
    const w = this.#fds.get(fd);
    if (!w) throw new ErrnoError(Errno.EBADF, 'descriptor not open');
    return w;
  }

  async fstat(fd: number, where: string): Promise<BigIntStats> {
    return revive(await this.call<object>('fstat', { fd }, where, [], this.#owner(fd)));
  }

  async read(fd: number, target: Uint8Array, position: number, where: string): Promise<number> {
    const { bytes, n } = await this.call<{ bytes: ArrayBuffer; n: number }>('read', { fd, length: target.length, position }, where, [], this.#owner(fd));
    target.set(new Uint8Array(bytes, 0, n));
    return n;
  }

  async write(fd: number, data: Uint8Array, position: number, where: string): Promise<number> {
    return this.call<number>('write', { fd, data: new Uint8Array(data), position }, where, [], this.#owner(fd));
  }

  async fsync(fd: number, datasync: boolean, where: string): Promise<void> {
    return this.call<void>('fsync', { fd, datasync }, where, [], this.#owner(fd));
  }

  async close(fd: number, where: string): Promise<void> {
    const w = this.#fds.get(fd);
    this.#fds.delete(fd);
    if (w && !w.stuck && this.#workers.includes(w)) await this.call<void>('close', { fd }, where, [], w);
  }

  readlink(path: string): Promise<string> {
    return this.call<string>('readlink', { path }, path);
  }

  statfs(path: string): Promise<{ bsize: bigint; blocks: bigint; bfree: bigint; bavail: bigint; files: bigint; ffree: bigint }> {
    return this.call('statfs', { path }, path);
  }

  readdir(path: string): Promise<string[]> {
    return this.call<string[]>('readdir', { path }, path);
  }

  /** A directory read in batches on one worker (`path` may be /proc/self/fd/N; `where` is the folder). */
  async opendir(path: string, where: string): Promise<number> {
    const w = this.#worker();
    if (!w) throw new ErrnoError(Errno.EIO, `host file systems do not answer (${MAX_STUCK_WORKERS} calls stuck)`);
    const id = this.#nextJob++;
    await this.call<number>('opendir', { path, id }, where, [], w);
    this.#dirs.set(id, w);
    return id;
  }

  /** Up to `max` more names, and whether that was the last. */
  async dirRead(id: number, max: number, where: string): Promise<{ names: string[]; done: boolean }> {
    const w = this.#dirs.get(id);
    if (!w) throw new ErrnoError(Errno.EBADF, 'directory not open');
    const got = await this.call<{ names: string[]; done: boolean } | null>('dirRead', { id, max }, where, [], w);
    if (got === null) throw new ErrnoError(Errno.EBADF, 'directory not open');
    if (got.done) this.#dirs.delete(id);
    return got;
  }

  async dirClose(id: number, where: string): Promise<void> {
    const w = this.#dirs.get(id);
    this.#dirs.delete(id);
    if (w && !w.stuck && this.#workers.includes(w)) await this.call<void>('dirClose', { id }, where, [], w).catch(() => {});
  }
}
