// What the guest may fill of the stick, from the real guest (boots it once):
// with Storage\FilesQuotaMiB 8 and Storage\RegistryQuotaKiB 64 set from the
// host,
// - a write through /host past the quota fails in the guest with "No space
//   left on device", the file written before is intact, the person is told
//   once (session log) and `status --json` shows it; after `rm`, writing
//   works again;
// - a `reg set` past the registry's room is refused with exit 4 and a line
//   saying so, and works after a `reg del`; the guest cannot raise its limits.
// And on a small loop-mounted stick (needs root): a write through /host that
// would leave the stick less than its reserve (the guest's RAM + 16 MiB here)
// fails with ENOSPC while the guest runs on, and works once space is freed.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import { removeDir, tempDir } from '../dyntable/helpers.ts';
import { canLoopMount, type LoopStick, makeLoopStick } from '../stick/loop-stick.ts';
import { addStickUser, freshStick, launcher, launcherJson, loginArgs } from './harness.ts';

const USER = 'quinn';
const PASSPHRASE = 'quinn quota passphrase';

interface StatusJson {
  state?: string;
  memoryMiB?: number;
  stickFull?: { message: string };
  storage?: {
    files: { usedBytes: number; capBytes: number; reserveBytes: number; full?: { message: string; reason: string } };
    registry?: { values: number; bytes: number; full?: { message: string } };
  };
}

describe('the stick limits from the real guest (boots the real guest once)', function () {
  this.timeout(900_000);
  let stick: Awaited<ReturnType<typeof freshStick>>;
  let base: string;
  let env: Record<string, string>;

  const exec = (script: string) => launcher(['exec', '--stick', stick.root, '--', 'sh', '-c', script], { env });
  const status = async () => (await launcherJson<StatusJson>(['status', '--stick', stick.root], { env })).json;

  before(async () => {
    stick = await freshStick();
    base = tempDir('pocketvm-limits-it-');
    const home = join(base, 'home');
    mkdirSync(home, { recursive: true });
    env = { HOME: home, XDG_CONFIG_HOME: join(home, '.config'), NO_COLOR: '1' };
    await addStickUser(stick.root, USER, PASSPHRASE);
    const sets = [
      ['Tables\\Rules\\Notes', 'Table', 'FIT'],
      ['Tables\\Rules\\Notes', 'GuestPath', '\\host\\Notes'],
      ['Storage', 'FilesQuotaMiB', '8', '--type', 'int32'],
      ['Storage', 'RegistryQuotaKiB', '64', '--type', 'int32'],
    ];
    for (const args of sets) {
      const set = await launcher(['reg', 'set', '--stick', stick.root, '--user', USER, ...args], { env });
      assert.equal(set.exitCode, 0, set.stderr);
    }
    const started = await launcher(['run', '--detach', '--accel', 'tcg', '--stick', stick.root, ...loginArgs(USER)], {
      input: `${PASSPHRASE}\n`,
      env,
      timeout: 600_000,
    });
    assert.equal(started.exitCode, 0, started.stderr);
  });

  after(async () => {
    await launcher(['stop', '--force', '--stick', stick.root], { env });
    await stick.dispose();
    removeDir(base);
  });

  it('refuses a write through /host past the quota with ENOSPC, keeps what was written, says so once, and writes again after rm', async () => {
    const fill = await exec(
      'set -e; dd if=/dev/urandom of=/host/Notes/kept bs=1M count=5 2>/dev/null; md5sum /host/Notes/kept > /tmp/kept.md5; ' +
        'for try in 1 2; do if dd if=/dev/zero of=/host/Notes/over$try bs=1M count=8 2>/tmp/err; then echo "over$try fit"; exit 9; fi; cat /tmp/err >&2; done; ' +
        'md5sum -c /tmp/kept.md5',
    );
    assert.equal(fill.exitCode, 0, `${fill.stdout}\n${fill.stderr}`);
    assert.match(fill.stderr, /No space left on device/);
    assert.match(fill.stdout, /kept: OK/);

    const full = await status();
    assert.equal(full.storage?.files.capBytes, 8 * 1024 * 1024);
    assert.equal(full.storage?.files.full?.reason, 'quota');
    assert.match(
      full.storage!.files.full!.message,
      /^the guest's files on the stick are at their quota \(\d+ of 8 MiB\): writes to \/host fail with "No space left on device"/,
    );
    const human = await launcher(['status', '--stick', stick.root], { env });
    assert.match(human.stdout, /the guest's files on the stick are at their quota/);
    assert.match(human.stdout, /the guest's writes to the stick: \/host 8 of 8 MiB, registry \d+ of 64 KiB/);
    // Two refused writes (and every refused request in them): one line in the session log.
    const log = readFileSync(join(stick.root, 'run', 'session.log'), 'utf8');
    assert.equal(log.split('\n').filter((line) => line.includes('are at their quota')).length, 1, log);

    const again = await exec(
      'set -e; rm /host/Notes/over1 /host/Notes/over2; md5sum -c /tmp/kept.md5; rm /host/Notes/kept; dd if=/dev/zero of=/host/Notes/after bs=1M count=7 2>/dev/null; ls -l /host/Notes/after',
    );
    assert.equal(again.exitCode, 0, `${again.stdout}\n${again.stderr}`);
    assert.match(again.stdout, / 7340032 /);
    const after = await status();
    assert.equal(after.storage?.files.full, undefined);
    assert.ok(after.storage!.files.usedBytes >= 7 * 1024 * 1024 && after.storage!.files.usedBytes < 8 * 1024 * 1024, String(after.storage!.files.usedBytes));
  });

  it("refuses a reg set past the registry room with exit 4 and one line, and takes it after reg del; Storage\\ stays the host's", async () => {
    // 20,000 characters: 40 KB as the registry counts (UTF-16); two do not fit in 64 KiB.
    const value = '$(head -c 20000 /dev/zero | tr "\\0" x)';
    const first = await exec(`reg set App One string "${value}"`);
    assert.equal(first.exitCode, 0, first.stderr);
    const second = await exec(`reg set App Two string "${value}"`);
    assert.equal(second.exitCode, 4, second.stderr);
    assert.match(second.stderr, /the registry is full: your layer holds \d+ KiB and this value needs \d+ KiB more, past the 64 KiB the guest may fill it to/);
    assert.match((await status()).storage?.registry?.full?.message ?? '', /^the registry is full/);
    const lift = await exec('reg set Storage RegistryQuotaKiB int32 999999');
    assert.equal(lift.exitCode, 2, lift.stderr);
    assert.match(lift.stderr, /Storage\\ holds the limits on what the guest writes to the stick/);
    assert.equal((await exec('reg del App One')).exitCode, 0);
    const third = await exec(`reg set App Two string "${value}"`);
    assert.equal(third.exitCode, 0, third.stderr);
    assert.equal((await status()).storage?.registry?.full, undefined);
  });
});

(canLoopMount ? describe : describe.skip)("the stick's reserve from the real guest (loop-mounted ext4; boots the real guest once)", function () {
  this.timeout(900_000);
  const MiB = 1024 * 1024;
  let loop: LoopStick | undefined;
  const passphrase = 'reserve passphrase';
  const filler = () => join(loop!.mnt, 'filler');
  const exec = (script: string) => launcher(['exec', '--stick', loop!.stick, '--', 'sh', '-c', script]);

  before(async () => {
    loop = await makeLoopStick({ sizeMiB: 512, prefix: 'pocketvm-reserve-', user: 'tester', passphrase });
    for (const args of [
      ['Tables\\Rules\\Notes', 'Table', 'FIT'],
      ['Tables\\Rules\\Notes', 'GuestPath', '\\host\\Notes'],
      ['Storage', 'StickReserveMiB', '16', '--type', 'int32'],
    ]) {
      const set = await launcher(['reg', 'set', '--stick', loop.stick, '--user', 'tester', ...args]);
      assert.equal(set.exitCode, 0, set.stderr);
    }
    const run = await launcher(['run', '--detach', '--accel', 'tcg', '--stick', loop.stick, ...loginArgs('tester')], {
      input: `${passphrase}\n`,
      timeout: 600_000,
    });
    assert.equal(run.exitCode, 0, run.stderr);
  });
  after(async () => {
    await loop?.dispose();
  });

  it('refuses a /host write that would eat into the reserve with ENOSPC, the guest running on; writes again once space is freed', async () => {
    const before = (await launcherJson<StatusJson>(['status', '--stick', loop!.stick])).json;
    const reserve = before.storage!.files.reserveBytes;
    assert.equal(reserve, (before.memoryMiB! + 16) * MiB);
    // Leave the reserve and 20 MiB free; the guest then writes 40 MiB.
    const fs = statfsSync(loop!.stick);
    execFileSync('fallocate', ['-l', String(fs.bavail * fs.bsize - reserve - 20 * MiB), filler()]);
    const refused = await exec('dd if=/dev/zero of=/host/Notes/big bs=1M count=40 2>&1; echo "dd exit $?"; ls -l /host/Notes/big');
    assert.match(refused.stdout, /No space left on device/);
    assert.match(refused.stdout, /dd exit 1/);
    const full = (await launcherJson<StatusJson>(['status', '--stick', loop!.stick])).json;
    assert.equal(full.state, 'ready');
    assert.equal(full.stickFull, undefined, 'the guest is not paused: only the /host write failed');
    assert.equal(full.storage?.files.full?.reason, 'reserve');
    assert.match(full.storage!.files.full!.message, /^the stick is nearly full \(\d+ MiB free, \d+ MiB kept for the personal disk and a suspend\)/);
    assert.ok(statfsSync(loop!.stick).bavail * fs.bsize >= reserve, 'the reserve is still free');

    rmSync(filler());
    const again = await exec('set -e; rm /host/Notes/big; dd if=/dev/zero of=/host/Notes/big bs=1M count=40 2>/dev/null; ls -l /host/Notes/big');
    assert.equal(again.exitCode, 0, `${again.stdout}\n${again.stderr}`);
    assert.match(again.stdout, / 41943040 /);
    assert.equal((await launcherJson<StatusJson>(['status', '--stick', loop!.stick])).json.storage?.files.full, undefined);
  });
});
