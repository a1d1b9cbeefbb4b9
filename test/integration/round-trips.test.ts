// Round trips 9pnet_pocketvm saves in the real guest (the module's "Round
// trips saved"): a stat(2) on /host (cache=mmap, no dentry cache) is a Twalk,
// a Tgetattr, the same Tgetattr again and a Tclunk; the module answers the
// second Tgetattr with the first's reply and the Tclunk itself (sent quietly,
// no reply), so a stat costs two round trips, not four; an open's clone
// walk (a Twalk with no names) is sent quietly too. Counted from the
// transport's frames, never timed. What the guest sees must not change: its
// own writes show at once, files it creates and removes are there and gone.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { removeDir, tempDir } from '../dyntable/helpers.ts';
import { bootWithNamespaceCard, type NamespaceCardGuest } from './namespace-card-guest.ts';

const FILES = 200;

describe('round trips saved by the guest module (/host on the namespace card)', function () {
  this.timeout(900_000);
  let base: string;
  let shared: string;
  let guest: NamespaceCardGuest;

  before(async () => {
    base = tempDir('pocketvm-round-trips-');
    shared = join(base, 'shared');
    mkdirSync(join(shared, 'many'), { recursive: true });
    for (let i = 0; i < FILES; i++) writeFileSync(join(shared, 'many', `f${i}`), `${i}`);
    guest = await bootWithNamespaceCard(base, shared, { shTimeoutMs: 600_000 });
  });
  after(async () => {
    try {
      await guest?.machine.shutdown();
    } finally {
      await guest?.dispose();
      removeDir(base);
    }
  });

  it('a stat is two requests the launcher answers (Twalk, Tgetattr), its Tclunk sent quietly', async () => {
    // The shell loop's own requests (cd) are a handful; each stat was four frames before.
    const frames = guest.transport.counters.frames;
    const quiet = guest.transport.counters.quietRequests;
    await guest.sh(`cd /host/many && i=0; while [ $i -lt ${FILES} ]; do [ -e f$i ] || exit 1; i=$((i + 1)); done`);
    const perStat = (guest.transport.counters.frames - frames) / FILES;
    assert.ok(perStat <= 3.1, `${perStat} frames per stat (4 without the module's answers)`);
    assert.ok(guest.transport.counters.quietRequests - quiet >= FILES, `${guest.transport.counters.quietRequests - quiet} quiet clunks for ${FILES} stats`);
  });

  it("an open's clone walk is sent quietly too: no reply for it", async () => {
    const quiet = guest.transport.counters.quietRequests;
    await guest.sh(`cd /host/many && i=0; while [ $i -lt ${FILES} ]; do cat f$i >/dev/null || exit 1; i=$((i + 1)); done`);
    // Per cat: the clone before its Tlopen, the clunks of the open file and of the looked-up one.
    const quietPerOpen = (guest.transport.counters.quietRequests - quiet) / FILES;
    assert.ok(quietPerOpen >= 3, `${quietPerOpen} quiet requests per open (2 without quiet clones)`);
  });

  it('the guest still sees its own changes at once, and files it creates and removes', async () => {
    const out = await guest.sh(
      [
        'cd /host/many',
        'stat -c %s f1',
        'printf 0123456789 >f1',
        'stat -c %s f1',
        'i=0; while [ $i -lt 50 ]; do : >g$i && [ -e g$i ] || exit 1; i=$((i + 1)); done',
        'rm g7 && ! [ -e g7 ] && echo gone',
        'ls | grep -c "^g"',
      ].join(' && '),
    );
    assert.deepEqual(out.trim().split('\n'), ['1', '10', 'gone', '49']);
    assert.equal(readFileSync(join(shared, 'many', 'f1'), 'utf8'), '0123456789');
  });
});
