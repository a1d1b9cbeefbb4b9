// bench/at-rest: the namespace sealed at rest (src/dyntable/sealed/) against
// the same namespace plain, in the same run, alternating: the launcher's 9P
// server with the NamespaceBackend on a FIT entry (users/<name>/files, where
// the guest's own files go), driven in process over a stream pair by the
// test 9P client with the session's msize:
//
//   write   --mib (default 256) MiB into a new file in 1 MiB Twrites, then fsync
//   read    it back in 1 MiB Treads (a fresh open; the host's page cache is warm
//           for both, so this is the cipher's cost, not the disk's)
//   create  --files (default 10,000) empty files (Twalk + Tlcreate + Tclunk each)
//
// In process there is no guest to hide the server's cost behind, so these
// ratios are the worst case: a guest under TCG adds its own time per byte
// and per message to both sides. Prints medians and ratios (target: sealed
// >= 0.8 x plain on every line); never fails on a time.
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compileTable } from '../src/dyntable/compile.ts';
import { NamespaceBackend } from '../src/dyntable/namespace-backend.ts';
import { liveHost } from '../test/dyntable/helpers.ts';
import { benchOptions, median, numberOption } from './bench-options.ts';
import { CHUNK, O_RDONLY, servedClient, timeCreates, timeWrite } from './fit-client.ts';

const { runs, json, say } = benchOptions(3);
const MIB = numberOption('--mib', 256);
const FILES = numberOption('--files', 10_000);

type Variant = 'plain' | 'sealed';
interface Figures {
  writeMiBs: number;
  readMiBs: number;
  createsPerSec: number;
}

async function runOnce(variant: Variant, base: string): Promise<Figures> {
  const dir = join(base, variant);
  rmSync(dir, { recursive: true, force: true });
  const home = join(dir, 'home');
  mkdirSync(home, { recursive: true });
  const table = compileTable(liveHost(home, { stickRoot: join(dir, 'stick') }), [
    { origin: 'registry', source: 'bench', name: 'Notes', table: 'FIT', guestPath: '/host/Notes' },
  ]);
  const key = variant === 'sealed' ? randomBytes(32) : undefined;
  const backend = await NamespaceBackend.open({
    table,
    filesDir: join(dir, 'stick', 'files'),
    upperDir: join(dir, 'stick', 'upper'),
    ...(key ? { atRestKey: key } : {}),
  });
  key?.fill(0);
  const { client, server, hangUp } = await servedClient(backend);
  try {
    const writeS = await timeWrite(client, MIB);

    const t = performance.now();
    const r = await client.open(1, ['Notes', 'big'], O_RDONLY);
    let got = 0;
    for (;;) {
      const part = await client.read(r, got, CHUNK);
      if (part.length === 0) break;
      got += part.length;
    }
    await client.clunk(r);
    const readS = (performance.now() - t) / 1000;
    if (got !== MIB * CHUNK) throw new Error(`${variant}: read ${got} bytes, wrote ${MIB * CHUNK}`);

    const createS = await timeCreates(client, FILES);
    return { writeMiBs: MIB / writeS, readMiBs: MIB / readS, createsPerSec: FILES / createS };
  } finally {
    hangUp();
    await server.closed;
    await backend.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const base = join(process.env.POCKETVM_BENCH_DIR ?? tmpdir(), `pocketvm-bench-at-rest-${process.pid}`);
mkdirSync(base, { recursive: true });
const results: Record<Variant, Figures[]> = { plain: [], sealed: [] };
try {
  for (let run = 0; run < runs; run++) {
    for (const variant of (run % 2 ? ['sealed', 'plain'] : ['plain', 'sealed']) as Variant[]) {
      const figures = await runOnce(variant, base);
      results[variant].push(figures);
      say(
        `run ${run + 1}/${runs} ${variant}: write ${figures.writeMiBs.toFixed(0)} MiB/s, read ${figures.readMiBs.toFixed(0)} MiB/s, create ${figures.createsPerSec.toFixed(0)} files/s`,
      );
    }
  }
} finally {
  rmSync(base, { recursive: true, force: true });
}

const lines = [
  { line: `write ${MIB} MiB`, unit: 'MiB/s', key: 'writeMiBs' as const },
  { line: `read ${MIB} MiB`, unit: 'MiB/s', key: 'readMiBs' as const },
  { line: `create ${FILES} files`, unit: 'files/s', key: 'createsPerSec' as const },
].map(({ line, unit, key }) => {
  const sealed = median(results.sealed.map((f) => f[key]));
  const plain = median(results.plain.map((f) => f[key]));
  return { line, unit, sealed, plain, ratio: sealed / plain };
});
if (json) {
  process.stdout.write(`${JSON.stringify({ runs, mib: MIB, files: FILES, lines }, null, 2)}\n`);
} else {
  process.stdout.write(`bench/at-rest (median of ${runs}; sealed against plain, same run; target >= 0.8)\n`);
  for (const l of lines)
    process.stdout.write(
      `  ${l.line.padEnd(22)} sealed ${l.sealed.toFixed(0).padStart(6)} ${l.unit}   plain ${l.plain.toFixed(0).padStart(6)} ${l.unit}   ratio ${l.ratio.toFixed(2)}\n`,
    );
}
