// One launch's sizing step, for test/session/sizing-race.test.ts: holds its
// guest's session lock, waits for the wall-clock instant both children were
// given, sizes beside the others (src/session/launch/size-beside-others.ts)
// and prints the outcome; keeps the lock (stays alive) until stdin ends.
import { stickLayout } from '../../src/stick/layout.ts';
import { acquireLock } from '../../src/stick/lock.ts';
import { guestSessionLayout } from '../../src/stick/session-locks.ts';
import { parseManifest } from '../../src/payload/guest-manifest.ts';
import { sizeBesideOthers } from '../../src/session/launch/size-beside-others.ts';
import { PocketError } from '../../src/errors.ts';
import { validManifest } from '../payload/guest-manifest-fixture.ts';

const [root, guest, startAt, totalMiB, memoryQuota] = process.argv.slice(2) as [string, string, string, string, string | undefined];
const layout = guestSessionLayout(stickLayout(root), guest);
const lock = await acquireLock(layout, 'run', { guest, user: 'alice' });
const manifest = parseManifest(
  JSON.stringify({ ...validManifest, memory: { minimumMiB: 1024, recommendedMiB: 1024 }, cpus: { minimum: 1, recommended: 1 } }),
  guest,
);
await new Promise((resolve) => setTimeout(resolve, Math.max(0, Number(startAt) - Date.now())));
let outcome: Record<string, unknown>;
try {
  const sizing = await sizeBesideOthers({
    layout,
    lock,
    guest,
    manifest,
    // 3000 MiB: room for one such guest beside the host's reserve, not two (src/session/sizing.ts).
    profile: { memory: { totalMiB: Number(totalMiB), availableMiB: Number(totalMiB) }, cpu: { threads: 8 } },
    overrides: {},
    user: 'alice',
    memoryQuotaMiB: memoryQuota === undefined ? undefined : Number(memoryQuota),
  });
  outcome = { guest, memoryMiB: sizing.memoryMiB };
} catch (error) {
  outcome = { guest, exit: error instanceof PocketError ? error.exitCode : 1, message: (error as Error).message };
}
process.stdout.write(`${JSON.stringify(outcome)}\n`);
process.stdin.resume();
process.stdin.on('end', () => void lock.release().then(() => process.exit(0)));
