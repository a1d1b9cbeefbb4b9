// Signed confirmations: only the holder of the passphrase (the unwrapped
// disk key) can make one the launcher trusts; an edited, forged, copied or
// unsigned one is refused with one line, and never signed over.
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { deriveStateKey } from '../../src/auth/state-key.ts';
import { deriveTablesKey } from '../../src/auth/tables-key.ts';
import {
  checkConfirmations,
  confirmationsAreCurrent,
  readConfirmationRecords,
  recordConfirmation,
  trustedConfirmations,
  withdrawConfirmation,
} from '../../src/dyntable/confirmations.ts';
import { deriveAtRestKey } from '../../src/dyntable/sealed/keys.ts';
import { StickTamperedError } from '../../src/errors.ts';
import { ruleFingerprint } from '../../src/dyntable/registry-rules.ts';
import type { RuleSpec } from '../../src/dyntable/rules.ts';
import { removeDir, tempDir } from './helpers.ts';

const marker: RuleSpec = {
  name: 'Marker',
  table: 'FET',
  guestPath: '/host/marker',
  hostPath: '/tmp/marker',
  mode: 'readonly',
  origin: 'registry',
  source: 'test',
};
const wide: RuleSpec = { name: 'Wide', table: 'FET', guestPath: '/host/wide', hostPath: '/', origin: 'registry', source: 'test' };

describe('dyntable confirmations (signed with the user key)', () => {
  let dir: string;
  let file: string;
  const diskKey = randomBytes(32);
  const userId = randomUUID();
  beforeEach(() => {
    dir = tempDir('pocketvm-confirm-');
    file = join(dir, 'tables-confirmed.json');
  });
  afterEach(() => removeDir(dir));

  it('the tables key is derived from the disk key, and is neither it nor the state key', () => {
    const key = deriveTablesKey(diskKey);
    assert.equal(key.length, 32);
    assert.ok(!key.equals(diskKey));
    assert.ok(!key.equals(deriveStateKey(diskKey)));
    assert.ok(key.equals(deriveTablesKey(Buffer.from(diskKey))), 'deterministic');
  });

  it('a confirmation made with the key is trusted; the file holds no key material', async () => {
    await recordConfirmation(file, marker, diskKey, userId);
    const { trusted, refused } = await trustedConfirmations(file, diskKey, userId);
    assert.deepEqual([...trusted], [ruleFingerprint(marker)]);
    assert.deepEqual(refused, []);
    const text = readFileSync(file, 'utf8');
    for (const secret of [diskKey, deriveTablesKey(diskKey)]) {
      assert.ok(!text.includes(secret.toString('hex')) && !text.includes(secret.toString('base64')));
    }
  });

  it('refuses a record edited without the passphrase (rule and fingerprint changed together)', async () => {
    await recordConfirmation(file, marker, diskKey, userId);
    const body = JSON.parse(readFileSync(file, 'utf8'));
    body.confirmed[0].rule.hostPath = '/';
    body.confirmed[0].rule.guestPath = '/host/wide';
    body.confirmed[0].rule.mode = undefined;
    body.confirmed[0].fingerprint = ruleFingerprint(wide);
    writeFileSync(file, JSON.stringify(body));
    const { trusted, refused } = await trustedConfirmations(file, diskKey, userId);
    assert.equal(trusted.size, 0);
    assert.equal(refused.length, 1);
    assert.match(
      refused[0]!.message,
      /^tables-confirmed\.json: the confirmation of FET \/host\/wide ← \/ \(Tables\\Rules\\Marker\) does not carry your signature \(edited or copied in without your passphrase\); it is ignored and the rule waits for `launcher tables confirm`$/,
    );
    assert.ok(!refused[0]!.message.includes('\n'));
  });

  it('refuses a record forged without a MAC, one from another user (another key), and one with a bad MAC', async () => {
    const other = randomBytes(32);
    await recordConfirmation(file, wide, other, userId);
    const copied = (await readConfirmationRecords(file))[0]!;
    const records = [
      {
        fingerprint: ruleFingerprint(marker),
        rule: { name: 'Marker', table: 'FET', guestPath: '/host/marker', hostPath: '/tmp/marker', mode: 'readonly' },
        confirmedAt: new Date().toISOString(),
      },
      copied,
      { ...copied, mac: 'f'.repeat(64) },
      { ...copied, mac: 'not hex' },
    ];
    const { trusted, refused } = checkConfirmations(records, deriveTablesKey(diskKey), userId);
    assert.equal(trusted.size, 0);
    assert.deepEqual(
      refused.map((r) => /is not signed/.test(r.message)),
      [true, false, false, true],
    );
    // The same key but bound to another user id does not verify either.
    assert.equal(checkConfirmations([copied], deriveTablesKey(other), randomUUID()).trusted.size, 0);
    assert.equal(checkConfirmations([copied], deriveTablesKey(other), userId).trusted.size, 1);
  });

  it('a version 1 file (unsigned confirmations) is not trusted', async () => {
    writeFileSync(
      file,
      JSON.stringify({
        format: 'pocketvm-table-confirmations',
        version: 1,
        confirmed: [
          {
            fingerprint: ruleFingerprint(wide),
            rule: { name: 'Wide', table: 'FET', guestPath: '/host/wide', hostPath: '/' },
            confirmedAt: '2026-01-01T00:00:00.000Z',
          },
        ],
      }),
    );
    const { trusted, refused } = await trustedConfirmations(file, diskKey, userId);
    assert.equal(trusted.size, 0);
    assert.equal(refused.length, 1);
  });

  it('confirming drops forged records instead of signing over them; withdrawing takes the key too', async () => {
    await recordConfirmation(file, marker, diskKey, userId);
    const body = JSON.parse(readFileSync(file, 'utf8'));
    body.confirmed.push({
      fingerprint: ruleFingerprint(wide),
      rule: { name: 'Wide', table: 'FET', guestPath: '/host/wide', hostPath: '/' },
      confirmedAt: new Date().toISOString(),
      mac: '0'.repeat(64),
    });
    writeFileSync(file, JSON.stringify(body));
    const { dropped } = await recordConfirmation(file, { ...marker, name: 'Again', mode: 'cow' }, diskKey, userId);
    assert.equal(dropped.length, 1);
    const after = await trustedConfirmations(file, diskKey, userId);
    assert.deepEqual([...after.trusted].sort(), [ruleFingerprint(marker), ruleFingerprint({ ...marker, mode: 'cow' })].sort());
    assert.deepEqual(after.refused, []);
    assert.equal(await withdrawConfirmation(file, marker, diskKey, userId), true);
    assert.equal(await withdrawConfirmation(file, marker, diskKey, userId), false);
    assert.deepEqual([...(await trustedConfirmations(file, diskKey, userId)).trusted], [ruleFingerprint({ ...marker, mode: 'cow' })]);
  });

  it('an older copy of the file that still confirms a withdrawn rule is refused at launch (exit 10), and nothing is changed', async () => {
    const atRestKey = deriveAtRestKey(diskKey);
    const launch = async () => confirmationsAreCurrent(file, (await trustedConfirmations(file, diskKey, userId)).records, atRestKey);
    await recordConfirmation(file, marker, diskKey, userId);
    await recordConfirmation(file, wide, diskKey, userId);
    await launch();
    const older = readFileSync(file);
    assert.equal(await withdrawConfirmation(file, wide, diskKey, userId), true);
    await launch();
    const current = readFileSync(file);
    const anchor = readFileSync(join(dir, 'anchor.json'));
    // Whoever holds the stick puts the older copy back: every record in it still carries a valid MAC.
    writeFileSync(file, older);
    assert.equal((await trustedConfirmations(file, diskKey, userId)).trusted.has(ruleFingerprint(wide)), true, 'the MACs alone cannot tell');
    await assert.rejects(launch(), (error: unknown) => {
      assert.ok(error instanceof StickTamperedError);
      assert.equal(error.exitCode, 10);
      assert.match(error.message, /tables-confirmed\.json is an older copy: it confirms FET \/host\/wide ← \/ \(Tables\\Rules\\Wide\), which was withdrawn/);
      assert.equal(error.details['reason'], 'rolled-back');
      return true;
    });
    assert.deepEqual(readFileSync(join(dir, 'anchor.json')), anchor, 'the refusal changed nothing');
    assert.deepEqual(readFileSync(file), older);
    // The current file (or the rule withdrawn again) launches.
    writeFileSync(file, current);
    await launch();
    writeFileSync(file, older);
    await withdrawConfirmation(file, wide, diskKey, userId);
    await launch();
    assert.deepEqual([...(await trustedConfirmations(file, diskKey, userId)).trusted], [ruleFingerprint(marker)]);
    // Records deleted by hand only narrow: the anchor follows at the next launch.
    writeFileSync(file, JSON.stringify({ ...JSON.parse(readFileSync(file, 'utf8')), confirmed: [] }));
    await launch();
    writeFileSync(file, current);
    await assert.rejects(launch(), StickTamperedError);
    // An anchor edited without the key is refused as well.
    const edited = JSON.parse(readFileSync(join(dir, 'anchor.json'), 'utf8'));
    edited.tables = ['0'.repeat(64)];
    writeFileSync(join(dir, 'anchor.json'), JSON.stringify(edited));
    await assert.rejects(launch(), /anchor\.json does not carry your signature/);
  });

  it('a missing or unreadable file means no confirmations', async () => {
    assert.deepEqual(await readConfirmationRecords(join(dir, 'none.json')), []);
    writeFileSync(file, '{not json');
    assert.equal((await trustedConfirmations(file, diskKey, userId)).trusted.size, 0);
  });
});
