// The guest registry as the guest sees it, on one boot of the real payload:
// values set with `launcher reg set` before the boot configure the guest
// (hostname, timezone, keyboard layout, memory); the guest's `reg` reads and
// writes the user's registry live through the org.pocketvm.registry.0 port,
// in both directions, and what it wrote is on the stick after the session.
// A guest flooding the channel with bad requests cannot grow the transport
// log on the stick (src/primitives/capped-log.ts).
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { LOG_LIMITS } from '../../src/primitives/capped-log.ts';
import { addStickUser, freshStick, launcher, launcherJson, loginArgs } from './harness.ts';

const PASSPHRASE = 'rita registry passphrase';
/** Unbounded, their log lines would take 7 MiB, past the transport log's cap. */
const FLOOD_LINES = 100_000;

describe('the guest registry inside the guest (boots the real guest)', function () {
  this.timeout(300_000);
  let stick: Awaited<ReturnType<typeof freshStick>>;
  const reg = (...args: string[]) => launcher(['reg', ...args, '--stick', stick.root, '--user', 'rita']);
  const guest = (...command: string[]) => launcher(['exec', '--stick', stick.root, '--', ...command]);
  const guestRoot = (...command: string[]) => launcher(['exec', '--root', '--stick', stick.root, '--', ...command]);

  before(async () => {
    stick = await freshStick();
    await addStickUser(stick.root, 'rita', PASSPHRASE);
    for (const args of [
      ['set', 'Guest', 'Hostname', 'rita-box'],
      ['set', 'Guest', 'Timezone', 'Asia/Tokyo'],
      ['set', 'Guest', 'Keyboard', 'de'],
      ['set', 'Machine', 'MemoryMiB', '320', '--type', 'int32'],
    ]) {
      const result = await reg(...args);
      assert.equal(result.exitCode, 0, `reg ${args.join(' ')}: ${result.stderr}`);
    }
    const started = await launcher(['run', '--detach', '--accel', 'tcg', '--stick', stick.root, ...loginArgs('rita')], { input: `${PASSPHRASE}\n` });
    assert.equal(started.exitCode, 0, started.stderr);
  });
  after(async () => {
    await launcher(['stop', '--force', '--stick', stick.root]);
    await stick.dispose();
  });

  it('boots with the hostname, timezone, keyboard layout and memory set before the boot', async () => {
    const result = await guest('sh', '-c', 'hostname; cat /etc/hostname; date +%Z; cat /etc/timezone; grep XKBLAYOUT /etc/default/keyboard');
    assert.equal(result.exitCode, 0, result.stderr);
    assert.deepEqual(result.stdout.trim().split('\n'), ['rita-box', 'rita-box', 'JST', 'Asia/Tokyo', 'XKBLAYOUT="de"']);
    // Local time really is UTC+9 for every program (libc reads /etc/localtime).
    const offset = await guest('date', '+%z');
    assert.equal(offset.stdout.trim(), '+0900');
    const status = await launcherJson<{ memoryMiB: number }>(['status', '--stick', stick.root]);
    assert.equal(status.json.memoryMiB, 320);
  });

  it('saves the merged view at boot in /etc/pocketvm/registry.reg', async () => {
    const result = await guest('cat', '/etc/pocketvm/registry.reg');
    assert.equal(result.exitCode, 0, result.stderr);
    assert.match(result.stdout, /^Windows Registry Editor Version 5\.00\n/);
    assert.match(result.stdout, /"Hostname"="rita-box"/);
    // Session facts about the host are part of the merged view.
    assert.match(result.stdout, /\[HKEY_POCKETVM\\Host\]/);
  });

  it("the guest's reg reads and writes the user's registry, as the user and as root", async () => {
    assert.equal((await guest('reg', 'get', 'Guest', 'Hostname')).stdout, 'rita-box\n');
    const set = await guest('reg', 'set', 'App\\Prefs', 'Color', 'string', 'blue\tgreen');
    assert.equal(set.exitCode, 0, set.stderr);
    const multi = await guestRoot('reg', 'set', 'App\\Prefs', 'Recent', 'multi-string', 'a b', 'c');
    assert.equal(multi.exitCode, 0, multi.stderr);
    assert.equal((await guest('reg', 'get', 'app\\prefs', 'RECENT')).stdout, 'a b\nc\n');
    const ls = await guest('reg', 'ls', 'App\\Prefs');
    assert.equal(ls.stdout, 'Color\tstring\tuser\tblue\\tgreen\nRecent\tmulti-string\tuser\ta b\\nc\n');
  });

  it('refuses bad requests with one line and an exit code', async () => {
    const missing = await guest('reg', 'get', 'App', 'Nope');
    assert.deepEqual([missing.exitCode, missing.stderr], [1, 'reg: App Nope is not set\n']);
    const badType = await guest('reg', 'set', 'Guest', 'Hostname', 'int32', '5');
    assert.equal(badType.exitCode, 2);
    assert.match(badType.stderr, /^reg: Guest\\Hostname must be of type string/);
    const defaultsOnly = await guest('reg', 'del', 'Host');
    assert.deepEqual([defaultsOnly.exitCode, defaultsOnly.stderr], [1, 'reg: the key Host is not in your layer\n']);
    const usage = await guest('reg', 'frobnicate');
    assert.equal(usage.exitCode, 2);
  });

  it('takes turns: eight concurrent writers in the guest all land', async () => {
    const result = await guest('sh', '-c', 'for i in 1 2 3 4 5 6 7 8; do reg set Par "v$i" int32 "$i" & done; wait; reg ls Par | wc -l');
    assert.equal(result.exitCode, 0, result.stderr);
    assert.equal(result.stdout.trim(), '8');
  });

  it('sees a value set with launcher reg set while the session runs (live)', async () => {
    const set = await reg('set', 'App', 'Live', 'from-the-launcher');
    assert.equal(set.exitCode, 0, set.stderr);
    assert.equal((await guest('reg', 'get', 'App', 'Live')).stdout, 'from-the-launcher\n');
    await reg('set', 'App', 'Live', 'changed');
    assert.equal((await guest('reg', 'get', 'App', 'Live')).stdout, 'changed\n');
  });

  it(`a guest flooding the channel with ${FLOOD_LINES} bad requests: the transport log stays under its cap and counts every one`, async () => {
    const log = join(stick.root, 'run', 'default.qemu.log');
    const before = statSync(log).size;
    // As reg does: take the lock, open the port, read the replies meanwhile.
    const script = [
      'port=/dev/virtio-ports/org.pocketvm.registry.0',
      'exec 9</run/pocketvm/registry.lock && flock 9 && exec 3<>"$port" || exit 9',
      'cat <&3 >/tmp/replies & reader=$!',
      `awk 'BEGIN { for (i = 0; i < ${FLOOD_LINES}; i++) print "!not-an-id" }' >&3`,
      `n=0; while [ "$(grep -c 'malformed request' /tmp/replies)" -lt ${FLOOD_LINES} ] && [ $n -lt 600 ]; do sleep 1; n=$((n + 1)); done`,
      'kill $reader; grep -c "malformed request" /tmp/replies',
    ].join('\n');
    const flood = await guestRoot('sh', '-c', script);
    assert.equal(flood.exitCode, 0, flood.stderr);
    assert.equal(flood.stdout.trim(), String(FLOOD_LINES));
    // The counts are written a second after the flood stops.
    await new Promise((resolve) => setTimeout(resolve, 2500));
    const text = readFileSync(log, 'utf8');
    const grown = text.length - before;
    const written = text.split('\n').filter((line) => line === 'launcher: guest registry channel: a request without a valid id was refused').length;
    const repeated = [...text.matchAll(/^… the line above repeated (\d+) more times?$/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
    const dropped = [...text.matchAll(/^… (\d+) lines? dropped/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
    process.stderr.write(
      `      ${FLOOD_LINES} refused requests → the transport log grew ${grown} bytes (${written} lines, ${repeated} repeats, ${dropped} dropped)\n`,
    );
    assert.equal(written + repeated + dropped, FLOOD_LINES, 'every refused request is a line or counted');
    assert.ok(grown < 64 * 1024, `the transport log grew ${grown} bytes`);
    assert.ok(statSync(log).size <= LOG_LIMITS.transport.maxBytes);
  });

  it("without the user's own time zone, this PC's (Host\\Timezone) beats the payload default", async () => {
    assert.equal((await guest('reg', 'del', 'Guest', 'Timezone')).exitCode, 0);
    const hostZone = (await guest('reg', 'get', 'Host', 'Timezone')).stdout.trim();
    const defaultZone = (await launcher(['reg', 'get', 'Guest', 'Timezone', '--layer', 'defaults', '--stick', stick.root, '--user', 'rita'])).stdout.trim();
    assert.ok(hostZone !== '' && hostZone !== defaultZone, `host zone "${hostZone}", default "${defaultZone}"`);
    // The boot step again, as at the next boot.
    const result = await guestRoot('sh', '-c', 'sh /etc/pocketvm/boot.d/25-registry.sh && cat /etc/timezone');
    assert.equal(result.exitCode, 0, result.stderr);
    assert.equal(result.stdout.trim(), hostZone);
  });

  it('says there is no registry when the port is missing (one line, exit 3)', async () => {
    // As in a session without a logged-in user: no port at all.
    const port = '/dev/virtio-ports/org.pocketvm.registry.0';
    const result = await guestRoot('sh', '-c', `mv ${port} /run/reg-port; reg get Guest Hostname; rc=$?; mv /run/reg-port ${port}; exit $rc`);
    assert.deepEqual([result.exitCode, result.stderr], [3, 'reg: there is no registry in this session (the launcher serves one to a logged-in user only)\n']);
  });

  it("what the guest wrote is in the user's layer on the stick after the session", async () => {
    const stopped = await launcher(['stop', '--stick', stick.root]);
    assert.equal(stopped.exitCode, 0, stopped.stderr);
    const color = await launcherJson<{ layer: string; type: string; data: string }>([
      'reg',
      'get',
      'App\\Prefs',
      'Color',
      '--stick',
      stick.root,
      '--user',
      'rita',
    ]);
    assert.equal(color.exitCode, 0, color.stderr);
    assert.deepEqual([color.json.layer, color.json.type, color.json.data], ['user', 'string', 'blue\tgreen']);
    const recent = await reg('get', 'App\\Prefs', 'Recent');
    assert.equal(recent.stdout, 'a b\nc\n');
    const par = await reg('get', 'Par', 'v8');
    assert.equal(par.stdout, '8\n');
  });
});
