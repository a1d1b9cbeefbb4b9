// The user's own rules live in their guest registry (users/<name>/registry.sqlite),
// one key per rule:
//
//   Tables\Rules\<RuleName>
//     Table      string   FIT | FET
//     GuestPath  string   \host\Projects   (or /host/Projects; at or below /host)
//     HostPath   string   FET only: {Documents}\Work, ~/src, {home}, C:\Data, /srv/data
//     Mode       string   FET only: cow (default) | readonly
//     Enabled    bool     optional, default true (int32 0/1 and "false"/"true" also accepted)
//     Description string  optional
//
// Value names are matched case-insensitively. The guest may write its own
// registry, so a registry rule can never expose an excluded host path by
// itself: the person confirms it at the launcher (`launcher tables confirm
// RULE --user NAME`), which records the rule's fingerprint in
// users/<name>/tables-confirmed.json, a file the guest cannot reach. A rule
// whose fingerprint is recorded compiles with origin `confirmed`; changing
// the rule in any way voids the confirmation.
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { normalizeGuestPath, type RuleSpec } from './rules.ts';

export const TABLES_RULES_KEY = 'Tables\\Rules';

/** The part of GuestRegistry (src/guestregistry/registry.ts) that reading rules needs. */
export interface RegistryRuleReader {
  subkeys(key: string): string[];
  values(key: string): Array<{ name: string; value: { type: string; data: unknown }; layer?: string }>;
}

/** A rule read from the registry that is not usable, and why. */
export interface RegistryRuleProblem {
  key: string;
  message: string;
}

function valueOf(values: ReturnType<RegistryRuleReader['values']>, name: string): { type: string; data: unknown } | undefined {
  return values.find((v) => v.name.toLowerCase() === name.toLowerCase())?.value;
}

function stringOf(value: { type: string; data: unknown } | undefined): string | undefined {
  return value && (value.type === 'string' || value.type === 'expand-string') && typeof value.data === 'string' ? value.data : undefined;
}

function boolOf(value: { type: string; data: unknown } | undefined): boolean | undefined {
  if (!value) return undefined;
  if (value.type === 'bool' && typeof value.data === 'boolean') return value.data;
  if (value.type === 'int32' && typeof value.data === 'number') return value.data !== 0;
  const text = stringOf(value)?.toLowerCase();
  return text === 'true' || text === '1' ? true : text === 'false' || text === '0' ? false : undefined;
}

/** The content that a confirmation binds to (the name does not count). */
export function ruleFingerprint(rule: Pick<RuleSpec, 'table' | 'guestPath' | 'hostPath' | 'mode'>): string {
  const content = [rule.table, normalizeGuestPath(rule.guestPath) ?? rule.guestPath, rule.hostPath ?? '', rule.table === 'FET' ? (rule.mode ?? 'cow') : ''];
  return createHash('sha256').update(JSON.stringify(content)).digest('hex');
}

/**
 * The rules under Tables\Rules. `confirmed` holds fingerprints from the
 * user's confirmation file; a matching rule gets origin `confirmed`.
 */
export function readRegistryRules(registry: RegistryRuleReader, confirmed: ReadonlySet<string> = new Set()): { rules: RuleSpec[]; problems: RegistryRuleProblem[] } {
  const rules: RuleSpec[] = [];
  const problems: RegistryRuleProblem[] = [];
  let names: string[];
  try {
    names = registry.subkeys(TABLES_RULES_KEY);
  } catch {
    names = [];
  }
  for (const name of names) {
    const key = `${TABLES_RULES_KEY}\\${name}`;
    const values = registry.values(key);
    if (boolOf(valueOf(values, 'Enabled')) === false) continue;
    const table = stringOf(valueOf(values, 'Table'))?.toUpperCase();
    const guestPath = stringOf(valueOf(values, 'GuestPath'));
    const hostPath = stringOf(valueOf(values, 'HostPath'));
    const mode = stringOf(valueOf(values, 'Mode'))?.toLowerCase();
    const description = stringOf(valueOf(values, 'Description'));
    if (table !== 'FIT' && table !== 'FET') {
      problems.push({ key, message: 'Table must be the string FIT or FET' });
      continue;
    }
    if (!guestPath) {
      problems.push({ key, message: 'GuestPath (string) is missing' });
      continue;
    }
    if (mode !== undefined && mode !== 'cow' && mode !== 'readonly') {
      problems.push({ key, message: `Mode must be cow or readonly, not "${mode}"` });
      continue;
    }
    const layer = values.find((v) => v.name.toLowerCase() === 'table')?.layer;
    const spec: RuleSpec = {
      name,
      table,
      guestPath,
      origin: 'registry',
      source: `registry ${key}${layer ? ` (${layer} layer)` : ''}`,
      ...(hostPath === undefined ? {} : { hostPath }),
      ...(mode === undefined ? {} : { mode }),
      ...(description === undefined ? {} : { description }),
    };
    if (confirmed.has(ruleFingerprint(spec))) spec.origin = 'confirmed';
    rules.push(spec);
  }
  return { rules, problems };
}

export interface ConfirmationRecord {
  fingerprint: string;
  rule: { name: string; table: string; guestPath: string; hostPath?: string; mode?: string };
  confirmedAt: string;
}

interface ConfirmationFile {
  format: 'pocketvm-table-confirmations';
  version: 1;
  confirmed: ConfirmationRecord[];
}

/** The fingerprints in a user's confirmation file (empty when there is none or it is unreadable). */
export async function readConfirmations(file: string): Promise<ConfirmationRecord[]> {
  try {
    const parsed = JSON.parse(await readFile(file, 'utf8')) as Partial<ConfirmationFile>;
    if (parsed.format !== 'pocketvm-table-confirmations' || !Array.isArray(parsed.confirmed)) return [];
    return parsed.confirmed.filter((r): r is ConfirmationRecord => typeof r?.fingerprint === 'string' && /^[0-9a-f]{64}$/.test(r.fingerprint));
  } catch {
    return [];
  }
}

/** Record (or with `remove`, withdraw) the confirmation of one rule. Written atomically. */
export async function writeConfirmation(file: string, rule: RuleSpec, remove = false): Promise<ConfirmationRecord[]> {
  const fingerprint = ruleFingerprint(rule);
  const records = (await readConfirmations(file)).filter((r) => r.fingerprint !== fingerprint);
  if (!remove) {
    records.push({
      fingerprint,
      rule: { name: rule.name, table: rule.table, guestPath: rule.guestPath, ...(rule.hostPath === undefined ? {} : { hostPath: rule.hostPath }), ...(rule.mode === undefined ? {} : { mode: rule.mode }) },
      confirmedAt: new Date().toISOString(),
    });
  }
  const body: ConfirmationFile = { format: 'pocketvm-table-confirmations', version: 1, confirmed: records };
  await mkdir(dirname(file), { recursive: true });
  const temp = `${file}.tmp`;
  await writeFile(temp, `${JSON.stringify(body, null, 2)}\n`);
  await rename(temp, file);
  return records;
}
