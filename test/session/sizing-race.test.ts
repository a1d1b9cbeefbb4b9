// Two launches at the same instant (docs/guests.md, "Several at once"):
// each in its own process holds its guest's session lock and sizes beside
// the other at one wall-clock instant. The host has room for one of them:
// exactly one is refused (exit 34; with the user's memory quota as the
// bound, exit 35), never both sized as if alone. Without the stick's sizing
// lock both read the other's lock before it records a size and both start.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const node = process.execPath;
const child = new URL('./sizing-race-child.ts', import.meta.url).pathname;

interface Outcome {
  guest: string;
  memoryMiB?: number;
  exit?: number;
  message?: string;
}

/** Both children started, sized at one instant (a host with room for one; with a quota, a host with room for both and a quota for one); their outcomes once both have sized (then both let go). */
async function race(root: string, memoryQuota?: number): Promise<Outcome[]> {
  const startAt = String(Date.now() + 3_000);
  const children = ['work', 'play'].map((guest) =>
    spawn(node, [child, root, guest, startAt, memoryQuota === undefined ? '3000' : '16000', ...(memoryQuota === undefined ? [] : [String(memoryQuota)])], {
      stdio: ['pipe', 'pipe', 'inherit'],
    }),
  );
  try {
    return await Promise.all(
      children.map(
        (proc) =>
          new Promise<Outcome>((resolve, reject) => {
            createInterface({ input: proc.stdout! }).once('line', (line) => resolve(JSON.parse(line) as Outcome));
            proc.once('exit', (code) => reject(new Error(`the child exited (${code}) before sizing`)));
          }),
      ),
    );
  } finally {
    for (const proc of children) proc.stdin!.end();
    await Promise.all(children.map((proc) => new Promise((resolve) => (proc.exitCode !== null ? resolve(null) : proc.once('exit', resolve)))));
  }
}

describe('two launches sized at the same instant', function () {
  this.timeout(120_000);
  let parent: string;
  before(async () => {
    parent = await mkdtemp(join(tmpdir(), 'pocketvm-sizing-race-'));
  });
  after(async () => {
    if (parent) await rm(parent, { recursive: true, force: true });
  });

  for (let round = 1; round <= 3; round++)
    it(`round ${round}: one is sized, the other sees it and is refused (host: exit 34; user's quota: exit 35)`, async () => {
      for (const [quota, exit] of [
        [undefined, 34],
        [1500, 35],
      ] as const) {
        const root = join(parent, `stick-${round}-${exit}`);
        await mkdir(join(root, 'run'), { recursive: true });
        const outcomes = await race(root, quota);
        const sized = outcomes.filter((o) => o.memoryMiB !== undefined);
        const refused = outcomes.filter((o) => o.exit !== undefined);
        assert.equal(sized.length, 1, `exactly one sized: ${JSON.stringify(outcomes)}`);
        assert.equal(refused.length, 1, JSON.stringify(outcomes));
        assert.equal(refused[0]!.exit, exit, refused[0]!.message);
        assert.match(
          refused[0]!.message!,
          new RegExp(`beside the guests running from this stick: ${sized[0]!.guest}|alice's memory quota is 1500 MiB: ${sized[0]!.guest}`),
        );
      }
    });
});
