// The person's confirmations of table rules, users/<name>/tables-confirmed.json.
// A confirmation is what lets a rule widen what the guest sees (a FET rule
// from the guest registry, a folder outside the known folders, a default
// exclusion), so it must come from the person, not from whoever holds the
// stick: each record carries an HMAC-SHA256 under the user's tables key
// (src/auth/tables-key.ts, derived from the disk key that only the
// passphrase unwraps), over the rule's fingerprint, the user's id and the
// time. The launcher checks every record after login; one that does not
// verify (edited, forged, copied from another user or file, or from before
// confirmations were signed) is refused with one line and never trusted: its
// rule keeps waiting for `launcher tables confirm`.
//
// What a MAC cannot stop alone: putting back an older copy of this same
// user's file, which restores a confirmation the person later withdrew. So
// the user's anchor (rollback-anchor.ts) lists the MAC of every confirmation
// that may be trusted: confirming adds to it before the file is written,
// withdrawing (with the passphrase, for that reason) takes from it after;
// at launch a trusted record the anchor does not list is a rollback and the
// launch is refused (confirmationsAreCurrent). Deleting records only narrows
// the view; the next launch takes them off the anchor as well.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { deriveTablesKey } from '../auth/tables-key.ts';
import { replaceFile } from '../primitives/atomic-replace.ts';
import { anchorPathFor, readAnchor, rolledBack, withAnchorLock, writeAnchor } from './rollback-anchor.ts';
import { deriveAtRestKey } from './sealed/keys.ts';
import { ruleFingerprint } from './registry-rules.ts';
import type { RuleSpec } from './rules.ts';

export const CONFIRMATIONS_FORMAT = 'pocketvm-table-confirmations';
/** 2: records are signed (mac). Version 1 records had no MAC and are refused. */
export const CONFIRMATIONS_VERSION = 2;

export interface ConfirmedRule {
  name: string;
  table: string;
  guestPath: string;
  hostPath?: string;
  mode?: string;
}

export interface ConfirmationRecord {
  fingerprint: string;
  rule: ConfirmedRule;
  confirmedAt: string;
  /** HMAC-SHA256 (hex) under the user's tables key; absent in version 1 files. */
  mac?: string;
}

interface ConfirmationFile {
  format: typeof CONFIRMATIONS_FORMAT;
  version: number;
  confirmed: ConfirmationRecord[];
}

/** A record the launcher did not trust, and the line that says so. */
export interface RefusedConfirmation {
  record: ConfirmationRecord;
  message: string;
}

/** What the MAC covers: the rule's content (by fingerprint), whose it is, and when. */
function signedText(userId: string, record: Pick<ConfirmationRecord, 'fingerprint' | 'confirmedAt'>): string {
  return JSON.stringify([CONFIRMATIONS_FORMAT, CONFIRMATIONS_VERSION, userId, record.fingerprint, record.confirmedAt]);
}

function macOf(tablesKey: Buffer, userId: string, record: Pick<ConfirmationRecord, 'fingerprint' | 'confirmedAt'>): Buffer {
  return createHmac('sha256', tablesKey).update(signedText(userId, record)).digest();
}

function ruleText(rule: Partial<ConfirmedRule>): string {
  return `${rule.table ?? '?'} ${rule.guestPath ?? '?'}${rule.hostPath ? ` ← ${rule.hostPath}` : ''}${rule.name ? ` (Tables\\Rules\\${rule.name})` : ''}`;
}

function isRecord(value: unknown): value is ConfirmationRecord {
  const r = value as Partial<ConfirmationRecord> | null;
  return (
    typeof r === 'object' &&
    r !== null &&
    typeof r.fingerprint === 'string' &&
    /^[0-9a-f]{64}$/.test(r.fingerprint) &&
    typeof r.confirmedAt === 'string' &&
    typeof r.rule === 'object' &&
    r.rule !== null &&
    (r.mac === undefined || typeof r.mac === 'string')
  );
}

/** The records of a confirmation file, unchecked (empty when there is none or it is not one). */
export async function readConfirmationRecords(file: string): Promise<ConfirmationRecord[]> {
  let parsed: Partial<ConfirmationFile>;
  try {
    parsed = JSON.parse(await readFile(file, 'utf8')) as Partial<ConfirmationFile>;
  } catch {
    return [];
  }
  if (parsed?.format !== CONFIRMATIONS_FORMAT || !Array.isArray(parsed.confirmed)) return [];
  return parsed.confirmed.filter(isRecord);
}

/**
 * Split records into the fingerprints to trust and the refused ones. A
 * record is trusted when its MAC verifies under `tablesKey` for this user
 * and its fingerprint is that of the rule it names.
 */
export function checkConfirmations(
  records: readonly ConfirmationRecord[],
  tablesKey: Buffer,
  userId: string,
): { trusted: Set<string>; refused: RefusedConfirmation[] } {
  const trusted = new Set<string>();
  const refused: RefusedConfirmation[] = [];
  for (const record of records) {
    const given = record.mac !== undefined && /^[0-9a-f]{64}$/.test(record.mac) ? Buffer.from(record.mac, 'hex') : undefined;
    const expected = macOf(tablesKey, userId, record);
    const consistent = ruleFingerprint(record.rule as Pick<RuleSpec, 'table' | 'guestPath' | 'hostPath' | 'mode'>) === record.fingerprint;
    if (given && consistent && timingSafeEqual(given, expected)) {
      trusted.add(record.fingerprint);
      continue;
    }
    const how = given === undefined ? 'is not signed' : 'does not carry your signature';
    refused.push({
      record,
      message: `tables-confirmed.json: the confirmation of ${ruleText(record.rule)} ${how} (edited or copied in without your passphrase); it is ignored and the rule waits for \`launcher tables confirm\``,
    });
  }
  return { trusted, refused };
}

/**
 * After login: the fingerprints of the user's genuine confirmations, and a
 * line for each refused one. The tables key is derived here and zeroed
 * before returning; the caller keeps (and zeroes) the disk key.
 */
export async function trustedConfirmations(
  file: string,
  diskKey: Buffer,
  userId: string,
): Promise<{ trusted: Set<string>; refused: RefusedConfirmation[]; records: ConfirmationRecord[] }> {
  const records = await readConfirmationRecords(file);
  if (records.length === 0) return { trusted: new Set(), refused: [], records: [] };
  const key = deriveTablesKey(diskKey);
  try {
    const checked = checkConfirmations(records, key, userId);
    return { ...checked, records: records.filter((r) => checked.trusted.has(r.fingerprint) && checked.refused.every((x) => x.record !== r)) };
  } finally {
    key.fill(0);
  }
}

/** Puts the anchor's list of confirmations that may be trusted to `macs` (written only when it changes). */
function anchorConfirmations(file: string, atRestKey: Buffer, macs: string[]): void {
  const path = anchorPathFor(dirname(file));
  // A session of another guest may be opening a store named in the same anchor: one read-modify-write at a time.
  withAnchorLock(path, () => {
    const anchor = readAnchor(path, atRestKey) ?? { stores: {} };
    const sorted = [...new Set(macs)].sort();
    if (JSON.stringify(anchor.tables) === JSON.stringify(sorted)) return;
    writeAnchor(path, atRestKey, { ...anchor, tables: sorted });
  });
}

/**
 * At launch, after trustedConfirmations: every trusted record must be one
 * the anchor lists; one it does not is a confirmation the person withdrew,
 * back in an older copy of the file: refused (exit 10), nothing changed.
 * Otherwise the anchor is brought to the file (records deleted by hand come
 * off it too).
 */
export function confirmationsAreCurrent(file: string, trusted: readonly ConfirmationRecord[], atRestKey: Buffer): void {
  const anchor = readAnchor(anchorPathFor(dirname(file)), atRestKey);
  if (anchor?.tables) {
    const listed = new Set(anchor.tables);
    const resurrected = trusted.find((r) => r.mac === undefined || !listed.has(r.mac));
    if (resurrected) {
      throw rolledBack(
        file,
        `is an older copy: it confirms ${ruleText(resurrected.rule)}, which was withdrawn since (put back without your passphrase)`,
        `nothing was changed; put back the current file, or withdraw the rule again: launcher tables confirm ${resurrected.rule.name ?? 'RULE'} --revoke`,
      );
    }
  }
  anchorConfirmations(
    file,
    atRestKey,
    trusted.map((r) => r.mac!),
  );
}

async function writeRecords(file: string, records: ConfirmationRecord[]): Promise<void> {
  const body: ConfirmationFile = { format: CONFIRMATIONS_FORMAT, version: CONFIRMATIONS_VERSION, confirmed: records };
  await mkdir(dirname(file), { recursive: true });
  await replaceFile(file, `${JSON.stringify(body, null, 2)}\n`, { mode: 0o600 });
}

/**
 * Record the person's confirmation of one rule, signed. Records already in
 * the file are kept only if they verify: a forged one is dropped (and
 * returned, to be said), never signed over. Written atomically.
 */
export async function recordConfirmation(
  file: string,
  rule: RuleSpec,
  diskKey: Buffer,
  userId: string,
  now = new Date(),
): Promise<{ record: ConfirmationRecord; dropped: RefusedConfirmation[] }> {
  const key = deriveTablesKey(diskKey);
  try {
    const fingerprint = ruleFingerprint(rule);
    const existing = await readConfirmationRecords(file);
    const { trusted, refused } = checkConfirmations(existing, key, userId);
    const kept = existing.filter((r) => trusted.has(r.fingerprint) && r.fingerprint !== fingerprint && refused.every((x) => x.record !== r));
    const unsigned: ConfirmationRecord = {
      fingerprint,
      rule: {
        name: rule.name,
        table: rule.table,
        guestPath: rule.guestPath,
        ...(rule.hostPath === undefined ? {} : { hostPath: rule.hostPath }),
        ...(rule.mode === undefined ? {} : { mode: rule.mode }),
      },
      confirmedAt: now.toISOString(),
    };
    const record = { ...unsigned, mac: macOf(key, userId, unsigned).toString('hex') };
    // The anchor lists the new record before the file holds it (and still the replaced ones, until after).
    const atRestKey = deriveAtRestKey(diskKey);
    try {
      const before = existing.filter((r) => trusted.has(r.fingerprint) && refused.every((x) => x.record !== r)).map((r) => r.mac!);
      anchorConfirmations(file, atRestKey, [...before, record.mac]);
      await writeRecords(file, [...kept, record]);
      anchorConfirmations(
        file,
        atRestKey,
        [...kept, record].map((r) => r.mac!),
      );
    } finally {
      atRestKey.fill(0);
    }
    return { record, dropped: refused };
  } finally {
    key.fill(0);
  }
}

/**
 * Withdraw the confirmation of a rule (by its content). Takes the disk key:
 * the anchor must stop listing it, or an older copy of the file would bring
 * it back. The file first, then the anchor. Returns whether one was there.
 */
export async function withdrawConfirmation(
  file: string,
  rule: Pick<RuleSpec, 'table' | 'guestPath' | 'hostPath' | 'mode'>,
  diskKey: Buffer,
  userId: string,
): Promise<boolean> {
  const fingerprint = ruleFingerprint(rule);
  const records = await readConfirmationRecords(file);
  const kept = records.filter((r) => r.fingerprint !== fingerprint);
  if (kept.length !== records.length) await writeRecords(file, kept);
  const key = deriveTablesKey(diskKey);
  const atRestKey = deriveAtRestKey(diskKey);
  try {
    const { trusted, refused } = checkConfirmations(kept, key, userId);
    anchorConfirmations(
      file,
      atRestKey,
      kept.filter((r) => trusted.has(r.fingerprint) && refused.every((x) => x.record !== r)).map((r) => r.mac!),
    );
  } finally {
    key.fill(0);
    atRestKey.fill(0);
  }
  return kept.length !== records.length;
}
