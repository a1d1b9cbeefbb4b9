// Where the host adapters read the host from. The live source reads files,
// runs commands and (on Windows) reads the registry; tests hand the adapters a
// source made of recorded outputs instead (test/hostprobe/fixtures/), so the
// Windows and macOS adapters are exercised here without those hosts.
import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import { access, readFile, readlink, realpath } from 'node:fs/promises';
import { arch, availableParallelism, cpus, freemem, machine, release, totalmem } from 'node:os';

/** A registry value as registry-js returns it (REG_DWORD data is a number). */
export interface RegistryValue {
  name: string;
  type: string;
  data: string | number;
}

export interface OsBasics {
  /** `os.release()`: the kernel version. */
  release: string;
  /** `process.arch`. */
  arch: string;
  /** `os.machine()`: the hardware's, e.g. `arm64` under Rosetta 2 (macOS reports it honestly). */
  machine: string;
  totalMiB: number;
  freeMiB: number;
  cpuModel: string | null;
  /** `os.availableParallelism()`. */
  threads: number;
  /** What the runtime's ICU resolved (`Intl.DateTimeFormat().resolvedOptions()`). */
  intlTimeZone: string | null;
  intlLocale: string | null;
}

export interface ProbeSource {
  env: Readonly<Record<string, string | undefined>>;
  os: OsBasics;
  /** The file's text, or undefined when it does not exist or cannot be read. */
  readText(path: string): Promise<string | undefined>;
  readLink(path: string): Promise<string | undefined>;
  realPath(path: string): Promise<string | undefined>;
  exists(path: string): Promise<boolean>;
  /** Whether this process may open the file for reading and writing. */
  canReadWrite(path: string): Promise<boolean>;
  /** A command's stdout when it exits 0; undefined when it is missing, fails or takes too long. */
  run(command: string, args: string[]): Promise<string | undefined>;
  /** Windows: the values of a registry key (`HKCU\Keyboard Layout\Preload`); undefined when unreadable. */
  registryValues(key: string): Promise<RegistryValue[] | undefined>;
}

const MiB = 1024 * 1024;

export function liveOsBasics(): OsBasics {
  let intl: Intl.ResolvedDateTimeFormatOptions | undefined;
  try {
    intl = Intl.DateTimeFormat().resolvedOptions();
  } catch {
    intl = undefined;
  }
  return {
    release: release(),
    arch: arch(),
    machine: machine(),
    totalMiB: Math.floor(totalmem() / MiB),
    freeMiB: Math.floor(freemem() / MiB),
    cpuModel: cpus()[0]?.model.trim() || null,
    threads: availableParallelism(),
    intlTimeZone: intl?.timeZone ?? null,
    intlLocale: intl?.locale ?? null,
  };
}

function runCommand(command: string, args: string[], timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    try {
      execFile(command, args, { encoding: 'utf8', timeout: timeoutMs, killSignal: 'SIGKILL', windowsHide: true, maxBuffer: 4 * MiB }, (error, stdout) => {
        resolve(error ? undefined : stdout);
      });
    } catch {
      resolve(undefined);
    }
  });
}

/** `reg.exe query KEY` output → values (the fallback when registry-js has no native addon). */
export function parseRegQuery(output: string): RegistryValue[] {
  const values: RegistryValue[] = [];
  for (const line of output.split(/\r?\n/)) {
    // "    Name    REG_SZ    data": four spaces around each column; data may be empty.
    const match = /^ {4}(.+?) {4}(REG_[A-Z_]+)(?: {4}(.*))?$/.exec(line);
    if (!match) continue;
    const [, rawName, type, rawData = ''] = match;
    const name = rawName === '(Default)' ? '' : rawName!;
    const data =
      type === 'REG_DWORD' || type === 'REG_QWORD'
        ? Number.parseInt(rawData, 16)
        : type === 'REG_MULTI_SZ'
          ? rawData.split('\\0').filter(Boolean).join('\n')
          : rawData;
    values.push({ name, type: type!, data });
  }
  return values;
}

const HIVES: Record<string, string> = {
  HKCU: 'HKEY_CURRENT_USER',
  HKLM: 'HKEY_LOCAL_MACHINE',
  HKEY_CURRENT_USER: 'HKEY_CURRENT_USER',
  HKEY_LOCAL_MACHINE: 'HKEY_LOCAL_MACHINE',
};

async function liveRegistryValues(key: string, timeoutMs: number): Promise<RegistryValue[] | undefined> {
  const [hive = '', ...rest] = key.split('\\');
  const hkey = HIVES[hive.toUpperCase()];
  if (!hkey) return undefined;
  try {
    // registry-js is an optional dependency with a Windows-only addon; loaded
    // only here, and only on Windows hosts.
    const registry = (await import('registry-js')) as unknown as { enumerateValues(key: string, subkey: string): ReadonlyArray<RegistryValue> };
    const values = registry.enumerateValues(hkey, rest.join('\\'));
    if (values.length > 0) return [...values];
  } catch {
    // no addon on this stick for this host: reg.exe below
  }
  const output = await runCommand('reg', ['query', `${hkey}\\${rest.join('\\')}`], timeoutMs);
  return output === undefined ? undefined : parseRegQuery(output);
}

/** The source that reads this host. `timeoutMs` bounds each command it runs. */
export function liveSource(options: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): ProbeSource {
  const timeoutMs = options.timeoutMs ?? 2000;
  let basics: OsBasics | undefined;
  return {
    env: options.env ?? process.env,
    get os() {
      basics ??= liveOsBasics();
      return basics;
    },
    readText: (path) => readFile(path, 'utf8').catch(() => undefined),
    readLink: (path) => readlink(path).catch(() => undefined),
    realPath: (path) => realpath(path).catch(() => undefined),
    exists: (path) =>
      access(path, constants.F_OK).then(
        () => true,
        () => false,
      ),
    canReadWrite: (path) =>
      access(path, constants.R_OK | constants.W_OK).then(
        () => true,
        () => false,
      ),
    run: (command, args) => runCommand(command, args, timeoutMs),
    registryValues: (key) => liveRegistryValues(key, timeoutMs),
  };
}
