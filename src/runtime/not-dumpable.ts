// The launcher made not dumpable, from inside itself: Node has no binding for
// prctl(2) or setrlimit(2), so libc is called through koffi (a C FFI whose
// prebuilt koffi.node comes from npm, one package per platform). Per OS:
//   - Linux: prctl(PR_SET_DUMPABLE, 0). No core dump is written, and
//     /proc/<pid>/mem, environ, maps and fd/ become root's, so another process
//     of the same user (a debugger, a stray script) cannot read the disk key
//     or a passphrase out of the launcher's memory. (RLIMIT_CORE 0 and
//     coredump_filter 0 are set in no-core-dumps.ts.)
//   - macOS: setrlimit(RLIMIT_CORE, 0/0) in the process itself (there is no
//     prlimit(1) there). macOS has no dumpable flag; ptrace(PT_DENY_ATTACH) is
//     not used (it only stops debuggers that honour it, and breaks crash
//     reports).
//   - Windows: nothing; a crash dump there is Windows Error Reporting's,
//     configured per machine, not per process.
// Only koffi's native module is loaded (src/runtime/native-addon.ts): from
// node_modules in a checkout, `.pocketvm/bin/<platform>/koffi.node` on a stick.
import type * as Koffi from 'koffi';
import { nodePlatform, platformOf } from '../platform/current.ts';
import { loadAddon } from './native-addon.ts';

const PR_SET_DUMPABLE = 4;
const PR_GET_DUMPABLE = 3;
/** RLIMIT_CORE is 4 on Linux and on macOS. */
const RLIMIT_CORE = 4;

type KoffiNative = typeof Koffi;

/** Where koffi's native module is inside its per-platform npm package (@koromix/koffi-linux-x64/linux_x64/koffi.node). */
export function koffiSpecifier(platform: NodeJS.Platform = nodePlatform(), arch: string = process.arch): string {
  return `@koromix/koffi-${platform}-${arch}/${platform}_${arch}/koffi.node`;
}

let koffi: KoffiNative | undefined;
function loadKoffi(): KoffiNative {
  koffi ??= loadAddon<KoffiNative>('koffi', koffiSpecifier());
  return koffi;
}

function libc(platform: NodeJS.Platform): Koffi.LibraryHandle {
  return loadKoffi().load(platformOf(platform)?.libc ?? 'libc.so.6');
}

export interface DumpGuard {
  /** Linux: PR_SET_DUMPABLE 0 took. */
  notDumpable: boolean;
  /** macOS: RLIMIT_CORE 0/0 through setrlimit. */
  coreLimit: boolean;
  /** Why nothing could be done (koffi missing, a call refused). */
  problem?: string;
}

/** Linux: prctl(PR_SET_DUMPABLE, 0) in this process; true when PR_GET_DUMPABLE then says 0. */
export function setNotDumpable(): boolean {
  const lib = libc('linux');
  const prctl = lib.func('int prctl(int option, unsigned long arg2, unsigned long arg3, unsigned long arg4, unsigned long arg5)');
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) !== 0) return false;
  return prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) === 0;
}

/** RLIMIT_CORE to 0 (soft and hard) in this process through setrlimit(2); true when it took. */
export function setCoreLimitZero(platform: NodeJS.Platform = nodePlatform()): boolean {
  const k = loadKoffi();
  // rlim_t is 64-bit on Linux x64/arm64 and on macOS.
  const rlimit = k.struct({ rlim_cur: 'uint64_t', rlim_max: 'uint64_t' });
  const setrlimit = libc(platform).func('setrlimit', 'int', ['int', k.pointer(rlimit)]);
  return setrlimit(RLIMIT_CORE, { rlim_cur: 0, rlim_max: 0 }) === 0;
}

/** What this OS allows (see the top of this file); never throws: a launch goes on without it. */
export function forbidDumps(platform: NodeJS.Platform = nodePlatform()): DumpGuard {
  const guard: DumpGuard = { notDumpable: false, coreLimit: false };
  const how = platformOf(platform)?.dumpGuard ?? 'none';
  if (how === 'none') return guard;
  try {
    if (how === 'prctl') guard.notDumpable = setNotDumpable();
    else guard.coreLimit = setCoreLimitZero(platform);
    if (!guard.notDumpable && !guard.coreLimit) guard.problem = 'the system call was refused';
  } catch (error) {
    guard.problem = error instanceof Error ? error.message.split('\n')[0] : String(error);
  }
  return guard;
}
