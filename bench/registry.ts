// Guest registry benchmark (`node build.js bench registry [--values N] [--runs N] [--json]`):
// merged-view lookups and commits per second on a stick-like folder (a temp
// folder on the checkout's filesystem), export and import of 100,000 values.
// Each figure is printed beside a baseline measured in the same run: raw
// node:sqlite on one table with the same durability pragmas, and
// JSON.stringify/parse of the same data. Never fails on a time.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { fileURLToPath } from 'node:url';
import { GuestRegistry } from '../src/guestregistry/registry.ts';
import { stickDatabasePragmas } from '../src/primitives/stick-database.ts';
import { type RegValue, valueToJson } from '../src/guestregistry/value.ts';
import { benchOptions, median } from './bench-options.ts';

const options = benchOptions(3);
const valuesAt = process.argv.indexOf('--values');
const VALUES = valuesAt >= 0 ? Math.max(1000, Number(process.argv[valuesAt + 1]) || 100_000) : 100_000;
const PER_KEY = 100;
const LOOKUP_MS = 1500;
const COMMIT_MS = 2000;

const root = fileURLToPath(new URL('..', import.meta.url));
mkdirSync(join(root, '.cache'), { recursive: true });
const dir = mkdtempSync(join(root, '.cache', 'bench-registry-'));
const say = options.say;

function valueFor(i: number): RegValue {
  switch (i % 7) {
    case 0:
      return { type: 'string', data: `value number ${i}` };
    case 1:
      return { type: 'expand-string', data: `%HOME%\\data\\${i}` };
    case 2:
      return { type: 'int32', data: i };
    case 3:
      return { type: 'int64', data: BigInt(i) * 1_000_000_007n };
    case 4:
      return { type: 'bool', data: i % 2 === 0 };
    case 5:
      return { type: 'binary', data: Uint8Array.from({ length: 16 }, (_, j) => (i + j) & 0xff) };
    default:
      return { type: 'multi-string', data: [`a${i}`, `b${i}`] };
  }
}
const keyOf = (i: number) => `Bench\\K${Math.floor(i / PER_KEY)}`;
const nameOf = (i: number) => `v${i % PER_KEY}`;

function rawDb(file: string): DatabaseSync {
  const db = new DatabaseSync(file);
  for (const pragma of stickDatabasePragmas('shared')) db.exec(`PRAGMA ${pragma}`);
  db.exec('CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v) WITHOUT ROWID');
  return db;
}

function timeLoop(ms: number, step: (i: number) => void): number {
  let n = 0;
  const start = performance.now();
  let elapsed = 0;
  while (elapsed < ms) {
    for (let k = 0; k < 64; k++) step(n++);
    elapsed = performance.now() - start;
  }
  return (n / elapsed) * 1000;
}

function timeOnce(fn: () => void): number {
  const start = performance.now();
  fn();
  return performance.now() - start;
}

interface Figure {
  what: string;
  value: number;
  unit: string;
  baseline: number;
  baselineName: string;
  /** value / baseline for rates, baseline / value for times: above 1 is better than the baseline. */
  ratio: number;
}
const figures: Figure[] = [];
function report(what: string, value: number, unit: string, baseline: number, baselineName: string, higherIsBetter: boolean): void {
  const ratio = higherIsBetter ? value / baseline : baseline / value;
  figures.push({ what, value, unit, baseline, baselineName, ratio });
  const fmt = (n: number) => (n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(1));
  say(`${what.padEnd(34)} ${fmt(value).padStart(10)} ${unit.padEnd(6)}  ${baselineName} ${fmt(baseline)} ${unit}  ratio ${ratio.toFixed(2)}`);
}

try {
  say(`guest registry benchmark in ${dir} (${VALUES.toLocaleString('en-US')} values, ${PER_KEY} per key)`);

  // ---- lookups: the merged view over defaults, user, host and session layers.
  const lookupFile = join(dir, 'lookup.sqlite');
  const defaultsFile = join(dir, 'defaults.reg');
  const seedCount = Math.min(VALUES, 20_000);
  {
    const seed = GuestRegistry.open({ file: lookupFile, hostId: 'bench-host' });
    seed.transaction(() => {
      for (let i = 0; i < seedCount; i++) seed.set(i % 10 === 0 ? 'host' : 'user', keyOf(i), nameOf(i), valueFor(i));
    });
    const { writeFileSync } = await import('node:fs');
    writeFileSync(defaultsFile, seed.exportReg({ layer: 'user', key: 'Bench\\K0' }));
    seed.close({ backup: false });
  }
  const registry = GuestRegistry.open({
    file: lookupFile,
    defaultsFile,
    hostId: 'bench-host',
    session: [{ key: 'Host\\Os', name: 'Name', value: { type: 'string', data: 'linux' } }],
  });
  const picks = Array.from({ length: 4096 }, () => Math.floor(Math.random() * seedCount));
  const lookupRate = timeLoop(LOOKUP_MS, (n) => {
    const i = picks[n & 4095]!;
    if (!registry.get(keyOf(i), nameOf(i))) throw new Error('lookup missed');
  });
  registry.close({ backup: false });
  const raw = rawDb(join(dir, 'raw-lookup.sqlite'));
  raw.exec('BEGIN');
  const insert = raw.prepare('INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)');
  for (let i = 0; i < seedCount; i++) insert.run(`${keyOf(i)}\0${nameOf(i)}`.toLowerCase(), `value ${i}`);
  raw.exec('COMMIT');
  const select = raw.prepare('SELECT v FROM kv WHERE k = ?');
  const rawLookupRate = timeLoop(LOOKUP_MS, (n) => {
    const i = picks[n & 4095]!;
    if (!select.get(`${keyOf(i)}\0${nameOf(i)}`.toLowerCase())) throw new Error('raw lookup missed');
  });
  report('merged-view lookups', lookupRate, '/s', rawLookupRate, 'raw SELECT', true);

  // ---- commits: one set() per transaction, fsync'd like the raw baseline.
  // Alternating rounds, so a busy disk or CPU weighs on both sides alike.
  const commitRegistry = GuestRegistry.open({ file: join(dir, 'commit.sqlite'), hostId: 'bench-host', backupIntervalMs: 0 });
  const commitRates: number[] = [];
  const rawCommitRates: number[] = [];
  let committed = 0;
  for (let round = 0; round < 4; round++) {
    commitRates.push(timeLoop(COMMIT_MS / 4, () => commitRegistry.set('user', keyOf(committed % 100_000), nameOf(committed), valueFor(committed++))));
    rawCommitRates.push(timeLoop(COMMIT_MS / 4, (n) => insert.run(`commit${n % 1000}`, `value ${n}`)));
  }
  commitRegistry.close({ backup: false });
  raw.close();
  const commitRate = median(commitRates);
  const rawCommitRate = median(rawCommitRates);
  report('commits (one set per transaction)', commitRate, '/s', rawCommitRate, 'raw INSERT', true);

  // ---- export and import of VALUES values.
  const bigFile = join(dir, 'big.sqlite');
  {
    const big = GuestRegistry.open({ file: bigFile, hostId: 'bench-host' });
    big.transaction(() => {
      for (let i = 0; i < VALUES; i++) big.set('user', keyOf(i), nameOf(i), valueFor(i));
    });
    big.close({ backup: false });
  }
  const big = GuestRegistry.open({ file: bigFile, hostId: 'bench-host' });
  const data = Array.from({ length: VALUES }, (_, i) => ({ key: keyOf(i), name: nameOf(i), ...valueToJson(valueFor(i)) }));
  let text = '';
  let json = '';
  const exportMs: number[] = [];
  const stringifyMs: number[] = [];
  for (let run = 0; run < options.runs; run++) {
    exportMs.push(timeOnce(() => (text = big.exportReg({ layer: 'user' }))));
    stringifyMs.push(timeOnce(() => (json = JSON.stringify(data))));
  }
  big.close({ backup: false });
  report(`export ${VALUES.toLocaleString('en-US')} values (.reg v5)`, median(exportMs), 'ms', median(stringifyMs), 'JSON.stringify', false);

  const importMs: number[] = [];
  const parseMs: number[] = [];
  const rawImportMs: number[] = [];
  for (let run = 0; run < options.runs; run++) {
    const target = GuestRegistry.open({ file: join(dir, `import-${run}.sqlite`), hostId: 'bench-host' });
    importMs.push(
      timeOnce(() => {
        const counts = target.importReg(text, 'user');
        if (counts.values !== VALUES) throw new Error(`imported ${counts.values} values`);
      }),
    );
    target.close({ backup: false });
    parseMs.push(timeOnce(() => JSON.parse(json)));
    const rawTarget = rawDb(join(dir, `raw-import-${run}.sqlite`));
    const rawInsert = rawTarget.prepare('INSERT INTO kv (k, v) VALUES (?, ?)');
    rawImportMs.push(
      timeOnce(() => {
        rawTarget.exec('BEGIN');
        for (const row of JSON.parse(json) as Array<{ key: string; name: string; data: unknown }>)
          rawInsert.run(`${row.key}\0${row.name}`.toLowerCase(), JSON.stringify(row.data));
        rawTarget.exec('COMMIT');
      }),
    );
    rawTarget.close();
  }
  report(`import ${VALUES.toLocaleString('en-US')} values (one transaction)`, median(importMs), 'ms', median(parseMs), 'JSON.parse', false);
  report(`import ${VALUES.toLocaleString('en-US')} values (one transaction)`, median(importMs), 'ms', median(rawImportMs), 'JSON.parse + raw INSERTs', false);
  say(`(.reg text ${(text.length / 2 ** 20).toFixed(1)} Mi characters, JSON ${(json.length / 2 ** 20).toFixed(1)} Mi; ratio > 1: faster than the baseline)`);
  if (options.json) process.stdout.write(`${JSON.stringify({ dir, values: VALUES, runs: options.runs, figures }, null, 2)}\n`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
