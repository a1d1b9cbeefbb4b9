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
// What a MAC cannot stop: deleting records (that only narrows the view), and
// putting back an older copy of this same user's file, which restores a
// confirmation the person later withdrew (README, "What the passphrase
// protects").
import { createHmac, timingSafeEqual } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { deriveTablesKey } from '../auth/tables-key.ts';
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
  return typeof r === 'object' && r !== null && typeof r.fingerprint === 'string' && /^[0-9a-f]{64}$/.test(r.fingerprint) && typeof r.confirmedAt === 'string' && typeof r.rule === 'object' && r.rule !== null && (r.mac === undefined || typeof r.mac === 'string');
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
export function checkConfirmations(records: readonly ConfirmationRecord[], tablesKey: Buffer, userId: string): { trusted: Set<string>; refused: RefusedConfirmation[] } {
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
export async function trustedConfirmations(file: string, diskKey: Buffer, userId: string): Promise<{ trusted: Set<string>; refused: RefusedConfirmation[] }> {
  const records = await readConfirmationRecords(file);
  if (records.length === 0) return { trusted: new Set(), refused: [] };
  const key = deriveTablesKey(diskKey);
  try {
    return checkConfirmations(records, key, userId);
  } finally {
    key.fill(0);
  }
}

async function writeRecords(file: string, records: ConfirmationRecord[]): Promise<void> {
  const body: ConfirmationFile = { format: CONFIRMATIONS_FORMAT, version: CONFIRMATIONS_VERSION, confirmed: records };
  await mkdir(dirname(file), { recursive: true });
  const temp = `${file}.tmp`;
  await writeFile(temp, `${JSON.stringify(body, null, 2)}\n`, { mode: 0o600 });
  await rename(temp, file);
}

/**
 * Record the person's confirmation of one rule, signed. Records already in
 * the file are kept only if they verify: a forged one is dropped (and
 * returned, to be said), never signed over. Written atomically.
 */
export async function recordConfirmation(file: string, rule: RuleSpec, diskKey: Buffer, userId: string, now = new Date()): Promise<{ record: ConfirmationRecord; dropped: RefusedConfirmation[] }> {
  const key = deriveTablesKey(diskKey);
  try {
    const fingerprint = ruleFingerprint(rule);
    const existing = await readConfirmationRecords(file);
    const { trusted, refused } = checkConfirmations(existing, key, userId);
    const kept = existing.filter((r) => trusted.has(r.fingerprint) && r.fingerprint !== fingerprint && refused.every((x) => x.record !== r));
    const unsigned: ConfirmationRecord = {
      fingerprint,
      rule: { name: rule.name, table: rule.table, guestPath: rule.guestPath, ...(rule.hostPath === undefined ? {} : { hostPath: rule.hostPath }), ...(rule.mode === undefined ? {} : { mode: rule.mode }) },
      confirmedAt: now.toISOString(),
    };
    const record = { ...unsigned, mac: macOf(key, userId, unsigned).toString('hex') };
    await writeRecords(file, [...kept, record]);
    return { record, dropped: refused };
  } finally {
    key.fill(0);
  }
}

/**
 * Withdraw the confirmation of a rule (by its content). Needs no key:
 * withdrawing only narrows what the guest sees. Returns whether one was there.
 */
export async function withdrawConfirmation(file: string, rule: Pick<RuleSpec, 'table' | 'guestPath' | 'hostPath' | 'mode'>): Promise<boolean> {
  const fingerprint = ruleFingerprint(rule);
  const records = await readConfirmationRecords(file);
  const kept = records.filter((r) => r.fingerprint !== fingerprint);
  if (kept.length === records.length) return false;
  await writeRecords(file, kept);
  return true;
}
