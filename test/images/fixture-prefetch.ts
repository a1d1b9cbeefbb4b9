// The integration tier's slow fixtures, built in the background while
// `npm test` type-checks, runs the unit tier and the integration files that
// need none of them: the desktop image (build/image.ts: mmdebstrap of a
// whole desktop, minutes), the adapt test's Debian (adapt-image.ts: its
// mmdebstrap alone took 203 s in CI) and the images corpus (corpus.ts:
// mmdebstrap and three disks). On a fresh machine they were built one after
// the other inside the tests that need them, the machine's second core idle
// meanwhile (a TCG guest keeps one busy). The builder runs at the lowest CPU
// and I/O priority, so the tests running beside it lose little; the files
// that use these fixtures run last (orderForPrefetch), and each waits for
// its fixture while the builder still holds it (waitForPrefetch). A fixture
// the builder failed to make is made by its test as before, and fails there
// with its own message; the builder's log is .cache/fixture-prefetch.log.
//
// The claim on a fixture is a file .cache/fixture-prefetch/NAME.pid holding
// the builder's pid, written by the process that starts it before any test
// can look, removed when that fixture is done; a claim whose process is gone
// counts for nothing.
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const repo = join(import.meta.dirname, '..', '..');
const CLAIMS = join(repo, '.cache', 'fixture-prefetch');
export const FIXTURE_PREFETCH_CHILD = join(import.meta.dirname, 'fixture-prefetch-child.ts');
export const PREFETCH_LOG = join(repo, '.cache', 'fixture-prefetch.log');

/** The fixtures in the order the builder makes them, and how a test file that uses one imports it. */
export const PREFETCHED = [
  { name: 'desktop-image', imported: /from '\.\/desktop-machine\.ts'/ },
  { name: 'adapt-image', imported: /from '\.\.\/images\/adapt-image\.ts'/ },
  { name: 'images-corpus', imported: /from '\.\.\/images\/corpus\.ts'/ },
] as const;

export type PrefetchedFixture = (typeof PREFETCHED)[number]['name'];

const claimOf = (name: PrefetchedFixture, claims = CLAIMS) => join(claims, `${name}.pid`);

/**
 * Starts the builder (fixture-prefetch-child.ts) under `nice` and `ionice`
 * and claims every fixture for it; the caller kills it if it is still
 * running when the tests are done.
 */
export function startFixturePrefetch(node: string): ChildProcess {
  mkdirSync(CLAIMS, { recursive: true });
  const log = openSync(PREFETCH_LOG, 'w');
  const idleIo = existsSync('/usr/bin/ionice') ? ['/usr/bin/ionice', '-c', '3'] : [];
  try {
    const builder = spawn('nice', ['-n', '19', ...idleIo, node, FIXTURE_PREFETCH_CHILD], { cwd: repo, stdio: ['ignore', log, log] });
    if (builder.pid !== undefined) for (const { name } of PREFETCHED) writeFileSync(claimOf(name), String(builder.pid));
    builder.on('error', () => {});
    return builder;
  } finally {
    closeSync(log);
  }
}

/** The builder is done with `name` (made or failed). */
export function releaseFixture(name: PrefetchedFixture): void {
  rmSync(claimOf(name), { force: true });
}

/** Whether `pid` is still the builder (a claim left by a killed one may name a pid reused since). */
function isBuilder(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(FIXTURE_PREFETCH_CHILD);
  } catch {
    return false;
  }
}

/**
 * Blocks while another live process (the builder) holds the claim on `name`;
 * the caller then finds the fixture in its cache, or makes it itself.
 */
export function waitForPrefetch(name: PrefetchedFixture, log: (message: string) => void, claims = CLAIMS): void {
  let said = false;
  const started = performance.now();
  for (;;) {
    let pid: number;
    try {
      pid = Number(readFileSync(claimOf(name, claims), 'utf8'));
    } catch {
      break;
    }
    if (pid === process.pid || !isBuilder(pid)) break;
    if (!said) log(`waiting for the ${name} that npm test builds in the background (pid ${pid}; its log: ${PREFETCH_LOG})`);
    said = true;
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 2000);
  }
  if (said) log(`the background build of the ${name} ended after ${((performance.now() - started) / 1000).toFixed(0)} s of waiting`);
}

/** The integration files in the order to run them: those using a prefetched fixture last, so its build has the longest head start. */
export function orderForPrefetch(files: string[]): string[] {
  const uses = (file: string) => {
    const source = readFileSync(join(repo, file), 'utf8');
    return PREFETCHED.some(({ imported }) => imported.test(source));
  };
  return [...files.filter((file) => !uses(file)), ...files.filter(uses)];
}
