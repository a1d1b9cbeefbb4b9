// What the guest writes through /host is sealed on the stick: from the real
// guest, as its ordinary user, a marker goes into a host folder (a new file,
// and appended to a host file, which is copied up) and into a FIT folder
// (on the stick only); after the session, no file anywhere under the stick
// holds the marker, in a name or in content; a second session reads it all
// back. The marker is made inside the guest, so no command line, log or
// registry value carries it by accident.
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { removeDir, snapshotTree, tempDir } from '../dyntable/helpers.ts';
import { addStickUser, freshStick, launcher, loginArgs } from './harness.ts';

const USER = 'rosa';
const PASSPHRASE = 'rosa at rest passphrase';
/** What the guest computes: `printf 'at%s' "-rest-$((6*7))-marker"`. */
const MARKER = 'at-rest-42-marker';
const MAKE_MARKER = `M=$(printf 'at%s' "-rest-$((6*7))-marker")`;

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    const st = statSync(path, { throwIfNoEntry: false });
    if (!st) return [];
    return st.isDirectory() ? filesUnder(path) : [path];
  });
}

describe("the guest's writes through /host, sealed at rest (real guest)", function () {
  this.timeout(900_000);
  let stick: Awaited<ReturnType<typeof freshStick>>;
  let base: string;
  let home: string;
  let env: Record<string, string>;

  const ok = async (script: string) => {
    const result = await launcher(['exec', '--stick', stick.root, '--', 'sh', '-c', script], { env });
    assert.equal(result.exitCode, 0, `guest: ${script}\n${result.stdout}\n${result.stderr}`);
    return result.stdout;
  };
  const boot = async () => {
    const started = await launcher(['run', '--detach', '--accel', 'tcg', '--stick', stick.root, ...loginArgs(USER)], { input: `${PASSPHRASE}\n`, env });
    assert.equal(started.exitCode, 0, started.stderr);
  };
  const stop = async () => {
    const stopped = await launcher(['stop', '--stick', stick.root], { env });
    assert.equal(stopped.exitCode, 0, stopped.stderr);
  };

  before(async () => {
    stick = await freshStick();
    base = tempDir('pocketvm-at-rest-it-');
    home = join(base, 'home');
    mkdirSync(join(home, 'Documents'), { recursive: true });
    writeFileSync(join(home, 'Documents', 'diary.txt'), 'host line\n');
    env = { HOME: home, XDG_CONFIG_HOME: join(home, '.config'), NO_COLOR: '1' };
    await addStickUser(stick.root, USER, PASSPHRASE);
    for (const [name, value] of [
      ['Table', 'FIT'],
      ['GuestPath', '\\host\\Notes'],
    ] as const) {
      const set = await launcher(['reg', 'set', '--stick', stick.root, '--user', USER, 'Tables\\Rules\\Notes', name, value], { env });
      assert.equal(set.exitCode, 0, set.stderr);
    }
  });

  after(async () => {
    await launcher(['stop', '--force', '--stick', stick.root], { env });
    await stick.dispose();
    removeDir(base);
  });

  it('leaves the marker nowhere on the stick in plaintext, and reads it back in the next session', async () => {
    const hostBefore = snapshotTree(home);
    await boot();
    await ok(
      `${MAKE_MARKER}; set -e; echo "$M content" > "/host/Documents/$M-name.txt"; echo "$M appended" >> /host/Documents/diary.txt; ` +
        `mkdir "/host/Notes/$M-dir"; echo "$M in notes" > "/host/Notes/$M-dir/$M.txt"; ln -s "$M-target" "/host/Notes/$M-link"; sync`,
    );
    await stop();
    // The host folder itself is untouched: the change is on the stick.
    assert.deepEqual(snapshotTree(home), hostBefore);
    const everything = filesUnder(stick.root);
    assert.ok(
      everything.some((f) => f.includes(join('users', USER, 'upper', 'data'))),
      'nothing landed in upper/',
    );
    const holding = everything.filter((file) => {
      const raw = readFileSync(file);
      return raw.includes(Buffer.from(MARKER)) || raw.includes(Buffer.from(MARKER, 'utf16le')) || file.includes(MARKER);
    });
    assert.deepEqual(holding, [], `the marker is readable in ${holding.join(', ')}`);
    // Nor is the copied-up host file's own content.
    assert.deepEqual(
      everything.filter((file) => readFileSync(file).includes(Buffer.from('host line'))),
      [],
    );

    await boot();
    const back = await ok(
      `${MAKE_MARKER}; cat "/host/Documents/$M-name.txt" /host/Documents/diary.txt "/host/Notes/$M-dir/$M.txt"; readlink "/host/Notes/$M-link"; ls /host/Notes`,
    );
    assert.equal(back, `${MARKER} content\nhost line\n${MARKER} appended\n${MARKER} in notes\n${MARKER}-target\n${MARKER}-dir\n${MARKER}-link\n`);
    await stop();
  });
});
