// bench/quota: what the stick limits cost (src/dyntable/store-quota.ts): the
// namespace sealed at rest as a session serves it, with the user's quota and
// the stick's reserve counted, against the same namespace without them, in the
// same run, alternating; the launcher's 9P server driven in process over a
// stream pair by the test 9P client with the session's msize:
//
//   write   --mib (default 256) MiB into a new file in 1 MiB Twrites, then fsync
//   create  --files (default 10,000) empty files (Twalk + Tlcreate + Tclunk each)
//   open    the backend again over those files (the quota counts what is
//           stored at every open: one size read per file)
//
// In process there is no guest to hide the server's cost, so the ratios are
// the worst case. Prints medians and ratios (target: >= 0.95 on every line);
// never fails on a time.
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compileTable } from '../src/dyntable/compile.ts';
import { NamespaceBackend } from '../src/dyntable/namespace-backend.ts';
import { StoreQuota } from '../src/dyntable/store-quota.ts';
import { liveHost } from '../test/dyntable/helpers.ts';
import { benchOptions, median, numberOption } from './bench-options.ts';
import { servedClient, timeCreates, timeWrite } from './fit-client.ts';

const { runs, json, say } = benchOptions(3);
const MIB = numberOption('--mib', 256);
const FILES = numberOption('--files', 10_000);

type Variant = 'quota' | 'none';
interface Figures {
  writeMiBs: number;
  createsPerSec: number;
  openMs: number;
}

async function runOnce(variant: Variant, base: string): Promise<Figures> {
  const dir = join(base, variant);
  rmSync(dir, { recursive: true, force: true });
  const home = join(dir, 'home');
  mkdirSync(home, { recursive: true });
  const table = compileTable(liveHost(home, { stickRoot: join(dir, 'stick') }), [
    { origin: 'registry', source: 'bench', name: 'Notes', table: 'FIT', guestPath: '/host/Notes' },
  ]);
  const key = randomBytes(32);
  // As a session: 4 GiB for files/ and upper/, the reserve a 256 MiB guest keeps (statfs of the stick's folder).
  const quota = () => (variant === 'quota' ? { quota: new StoreQuota({ capBytes: 4096 * 1024 ** 2, reserveBytes: 512 * 1024 ** 2, stickDir: dir }) } : {});
  const open = () => NamespaceBackend.open({ table, filesDir: join(dir, 'stick', 'files'), upperDir: join(dir, 'stick', 'upper'), atRestKey: key, ...quota() });
  const backend = await open();
  const { client, server, hangUp } = await servedClient(backend);
  try {
    const writeS = await timeWrite(client, MIB);
    const createS = await timeCreates(client, FILES);
    hangUp();
    await server.closed;
    await backend.close();

    const t = performance.now();
    const again = await open();
    const openMs = performance.now() - t;
    await again.close();
    return { writeMiBs: MIB / writeS, createsPerSec: FILES / createS, openMs };
  } finally {
    hangUp();
    await backend.close();
    key.fill(0);
    rmSync(dir, { recursive: true, force: true });
  }
}

const base = join(process.env.POCKETVM_BENCH_DIR ?? tmpdir(), `pocketvm-bench-quota-${process.pid}`);
mkdirSync(base, { recursive: true });
const results: Record<Variant, Figures[]> = { quota: [], none: [] };
try {
  for (let run = 0; run < runs; run++) {
    for (const variant of (run % 2 ? ['quota', 'none'] : ['none', 'quota']) as Variant[]) {
      const figures = await runOnce(variant, base);
      results[variant].push(figures);
      say(
        `run ${run + 1}/${runs} ${variant}: write ${figures.writeMiBs.toFixed(0)} MiB/s, create ${figures.createsPerSec.toFixed(0)} files/s, open ${figures.openMs.toFixed(0)} ms`,
      );
    }
  }
} finally {
  rmSync(base, { recursive: true, force: true });
}

const lines = [
  { line: `write ${MIB} MiB`, unit: 'MiB/s', key: 'writeMiBs' as const, higher: true },
  { line: `create ${FILES} files`, unit: 'files/s', key: 'createsPerSec' as const, higher: true },
  { line: `open over ${FILES} files`, unit: 'ms', key: 'openMs' as const, higher: false },
].map(({ line, unit, key, higher }) => {
  const quota = median(results.quota.map((f) => f[key]));
  const none = median(results.none.map((f) => f[key]));
  // Ratios read "as fast as without": a time's ratio is inverted.
  return { line, unit, quota, none, ratio: higher ? quota / none : none / quota };
});
if (json) {
  process.stdout.write(`${JSON.stringify({ runs, mib: MIB, files: FILES, lines }, null, 2)}\n`);
} else {
  process.stdout.write(`bench/quota (median of ${runs}; sealed with the stick limits against sealed without, same run; target >= 0.95)\n`);
  for (const l of lines)
    process.stdout.write(
      `  ${l.line.padEnd(24)} with ${l.quota.toFixed(0).padStart(6)} ${l.unit}   without ${l.none.toFixed(0).padStart(6)} ${l.unit}   ratio ${l.ratio.toFixed(2)}\n`,
    );
}
