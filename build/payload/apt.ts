// What the payload build asks of apt, and nothing more: which version is the
// candidate, what the archive says a version's .deb must look like, what a
// package depends on, and fetching .debs. Everything goes through apt-cache
// and apt-get so the machine's own sources.list, proxy and keys apply.
import { CommandError, runCommand } from './run.ts';
import { PayloadBuildError } from './errors.ts';

/** One downloadable .deb as the archive index describes it. */
export interface AptRecord {
  name: string;
  version: string;
  architecture: string;
  /** Basename of the pool file, e.g. busybox-static_1.35.0-4+deb12u1+b1_amd64.deb. */
  filename: string;
  sha256: string;
  size: number;
}

const updateHint = 'run `apt-get update` and retry';

function aptFailure(what: string, error: unknown): PayloadBuildError {
  if (error instanceof CommandError && error.notFound) {
    return new PayloadBuildError(`${error.command.split(' ')[0]} not found: the payload is built from Debian packages`, {
      hint: 'build on Debian or Ubuntu (or in a Debian container) with apt available',
      cause: error,
    });
  }
  const detail = error instanceof Error ? error.message : String(error);
  return new PayloadBuildError(`${what} failed: ${detail}`, { hint: updateHint, cause: error });
}

/** Splits apt's RFC 822-style output into one field map per record. */
export function parseControlRecords(text: string): Array<Map<string, string>> {
  const records: Array<Map<string, string>> = [];
  for (const block of text.split(/\n\s*\n/)) {
    const fields = new Map<string, string>();
    let last: string | undefined;
    for (const line of block.split('\n')) {
      if (/^\s/.test(line) && last !== undefined) {
        fields.set(last, `${fields.get(last) ?? ''}\n${line.trim()}`);
        continue;
      }
      const colon = line.indexOf(':');
      if (colon <= 0) continue;
      last = line.slice(0, colon);
      fields.set(last, line.slice(colon + 1).trim());
    }
    if (fields.size > 0) records.push(fields);
  }
  return records;
}

/** The candidate version of each package, or null where apt has none. */
export async function candidateVersions(names: string[]): Promise<Map<string, string | null>> {
  const result = new Map<string, string | null>(names.map((n) => [n, null]));
  if (names.length === 0) return result;
  let stdout: string;
  try {
    ({ stdout } = await runCommand('apt-cache', ['policy', ...names]));
  } catch (error) {
    throw aptFailure(`apt-cache policy ${names.join(' ')}`, error);
  }
  let current: string | undefined;
  for (const line of stdout.split('\n')) {
    const head = /^(\S+):$/.exec(line);
    if (head) {
      current = head[1]?.replace(/:amd64$/, '');
      continue;
    }
    const candidate = /^\s+Candidate:\s*(\S+)/.exec(line);
    if (candidate && current !== undefined && result.has(current)) {
      result.set(current, candidate[1] === '(none)' ? null : (candidate[1] ?? null));
    }
  }
  return result;
}

/**
 * What the archive says about each name=version, in one apt-cache call
 * (each call re-reads the package lists, about half a second). A spec is
 * missing from the result when no configured source can supply that exact
 * version (only the dpkg status has it, or the mirror moved on).
 */
export async function archiveRecords(specs: Array<{ name: string; version: string }>): Promise<Map<string, AptRecord>> {
  const found = new Map<string, AptRecord>();
  if (specs.length === 0) return found;
  const args = specs.map((s) => `${s.name}=${s.version}`);
  let stdout: string;
  try {
    ({ stdout } = await runCommand('apt-cache', ['show', ...args], { allowFailure: true }));
  } catch (error) {
    throw aptFailure(`apt-cache show ${args.join(' ')}`, error);
  }
  const wanted = new Set(args);
  for (const fields of parseControlRecords(stdout)) {
    const name = fields.get('Package');
    const version = fields.get('Version');
    const filename = fields.get('Filename');
    const sha256 = fields.get('SHA256');
    const size = Number(fields.get('Size'));
    const key = `${name}=${version}`;
    if (!name || !version || !wanted.has(key) || found.has(key)) continue;
    if (!filename || !sha256 || !Number.isSafeInteger(size)) continue;
    found.set(key, {
      name,
      version,
      architecture: fields.get('Architecture') ?? 'unknown',
      filename: filename.split('/').at(-1) ?? filename,
      sha256: sha256.toLowerCase(),
      size,
    });
  }
  return found;
}

export async function archiveRecord(name: string, version: string): Promise<AptRecord | null> {
  return (await archiveRecords([{ name, version }])).get(`${name}=${version}`) ?? null;
}

/** Direct Depends and Pre-Depends of each package (every alternative; virtual names left out). */
export async function directDependencies(names: string[]): Promise<Map<string, string[]>> {
  const result = new Map<string, string[]>(names.map((n) => [n, []]));
  if (names.length === 0) return result;
  let stdout: string;
  try {
    ({ stdout } = await runCommand('apt-cache', ['depends', ...names]));
  } catch (error) {
    throw aptFailure(`apt-cache depends ${names.join(' ')}`, error);
  }
  let deps: string[] | undefined;
  for (const line of stdout.split('\n')) {
    if (/^\S/.test(line)) {
      deps = result.get(line.trim().replace(/:amd64$/, ''));
      continue;
    }
    const match = /^\s+\|?(?:Depends|PreDepends):\s+(\S+)/.exec(line);
    const target = match?.[1];
    if (!deps || !target || target.startsWith('<')) continue;
    const bare = target.replace(/:any$|:amd64$/, '');
    if (!deps.includes(bare)) deps.push(bare);
  }
  return result;
}

/** The concrete package a metapackage such as linux-image-amd64 currently points to. */
export async function resolveMetapackage(name: string, prefix: string): Promise<string> {
  const deps = (await directDependencies([name])).get(name) ?? [];
  const concrete = deps.find((d) => d.startsWith(prefix) && d !== name);
  if (!concrete) {
    throw new PayloadBuildError(`apt has no ${prefix}* package behind ${name}`, { hint: updateHint });
  }
  return concrete;
}

/** Downloads name=version .debs into dir with apt-get download (one call, so apt fetches in parallel). */
export async function downloadPackages(records: AptRecord[], dir: string): Promise<void> {
  if (records.length === 0) return;
  const specs = records.map((r) => `${r.name}=${r.version}`);
  try {
    // The payload cache is owned by the builder, not by the _apt sandbox user.
    await runCommand('apt-get', ['download', '-q', '-o', 'APT::Sandbox::User=root', ...specs], { cwd: dir });
  } catch (error) {
    const names = records.map((r) => `${r.name}=${r.version}`).join(', ');
    if (error instanceof CommandError && !error.notFound) {
      throw new PayloadBuildError(`apt-get download failed for ${names}: ${updateHint}`, { cause: error, details: { stderr: error.result?.stderr } });
    }
    throw aptFailure(`apt-get download ${names}`, error);
  }
}
