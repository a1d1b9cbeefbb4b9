// SIGKILL during a commit loop, many times over the same file: after each
// kill the file passes integrity_check, opens without recovery, and holds
// exactly the state after some prefix of the commits (every commit the child
// reported, plus at most the one in flight).
// Test tier: integration (kills real processes in a crash loop for tens of seconds).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { fileURLToPath } from 'node:url';
import { GuestRegistry } from '../../src/guestregistry/registry.ts';
import { regValueEquals } from '../../src/guestregistry/value.ts';
import { commitContent, SLOTS } from './crash-model.ts';

const child = fileURLToPath(new URL('./crash-child.ts', import.meta.url));
const TRIALS = 25;

/** Runs the child until `killAfterMs` after it is ready, SIGKILLs it; the last commit it reported. */
async function killedRun(file: string, killAfterMs: number): Promise<{ lastReported: number; reported: number }> {
  const proc = spawn(process.execPath, [child, file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  let timer: NodeJS.Timeout | undefined;
  proc.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
  proc.stdout.on('data', (chunk: Buffer) => {
    out += chunk.toString();
    if (!timer && out.startsWith('ready\n')) timer = setTimeout(() => proc.kill('SIGKILL'), killAfterMs);
  });
  const signal = await new Promise<NodeJS.Signals | null>((resolve) => proc.on('exit', (_code, sig) => resolve(sig)));
  clearTimeout(timer);
  assert.equal(signal, 'SIGKILL', `the child ended on its own: ${err}`);
  // Only whole lines count: a number is printed after its commit returned.
  const numbers = out.split('\n').slice(1, -1).map(Number);
  return { lastReported: numbers.at(-1) ?? -1, reported: numbers.length };
}

function integrity(file: string): string {
  const db = new DatabaseSync(file);
  try {
    // Opening for writing lets SQLite roll back a hot journal first, as any reader would.
    return (db.prepare('PRAGMA integrity_check').all() as Array<Record<string, unknown>>).map((row) => String(row['integrity_check'])).join('; ');
  } finally {
    db.close();
  }
}

describe('guest registry: SIGKILL during commits', function () {
  this.timeout(120_000);
  let dir: string;
  after(() => rm(dir, { recursive: true, force: true }));

  it(`leaves a sound file holding a prefix of the commits, over ${TRIALS} kills at random moments`, async () => {
    dir = await mkdtemp(join(tmpdir(), 'pocketvm-crash-'));
    const file = join(dir, 'registry.sqlite');
    let previous = -1;
    let total = 0;
    let inFlightSeen = 0;
    let hotJournals = 0;
    for (let trial = 0; trial < TRIALS; trial++) {
      const { lastReported, reported } = await killedRun(file, 20 + Math.floor(Math.random() * 300));
      total += reported;
      // A journal left behind means the kill landed inside a write transaction.
      if (existsSync(`${file}-journal`)) hotJournals++;
      assert.equal(integrity(file), 'ok', `trial ${trial}`);
      const registry = GuestRegistry.open({ file, hostId: 'crash-host', check: 'full' });
      assert.equal(registry.recovery, undefined, `trial ${trial}: ${registry.recovery?.message}`);
      const counter = Number(registry.getAs('Crash', 'Counter', 'int64') ?? -1n);
      // Durable: every reported commit is there; atomic: at most the one in flight beyond it.
      assert.ok(
        counter >= lastReported && counter <= Math.max(lastReported, previous) + 1,
        `trial ${trial}: counter ${counter}, last reported ${lastReported}`,
      );
      if (counter > lastReported) inFlightSeen++;
      // The state is exactly that after commits 0..counter.
      const slots = registry.values('Crash\\Items');
      assert.equal(slots.length, Math.min(SLOTS, counter + 1));
      for (const { name, value } of slots) {
        const slot = Number(name.slice(4));
        const last = counter - ((counter - slot) % SLOTS);
        assert.ok(regValueEquals(value, { type: 'binary', data: commitContent(last) }), `trial ${trial}: ${name} is not commit ${last}'s`);
      }
      const rotating = registry.subkeys('Crash\\Rotating');
      assert.equal(rotating.length, Math.min(3, counter + 1));
      for (const key of rotating) {
        const k = Number(key);
        assert.equal(registry.getAs(`Crash\\Rotating\\${key}`, 'by', 'int32'), counter - ((counter - k) % 3));
      }
      registry.close({ backup: false });
      if (existsSync(`${file}.last-good`)) assert.equal(integrity(`${file}.last-good`), 'ok', `trial ${trial}: last good copy`);
      previous = counter;
    }
    assert.ok(total > TRIALS, `the child committed ${total} times in all`);
    process.stderr.write(
      `      ${TRIALS} kills, ${total} reported commits, ${previous + 1} in the file, ${inFlightSeen} kills after a commit landed but before it was reported, ${hotJournals} kills left a journal to roll back\n`,
    );
  });
});
