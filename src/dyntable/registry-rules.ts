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
// registry, so a registry FET rule never applies by itself: the person
// confirms it at the launcher (`launcher tables confirm RULE`, with their
// passphrase), which records the rule's fingerprint, signed, in
// users/<name>/tables-confirmed.json (confirmations.ts), a file the guest
// cannot reach. A rule whose fingerprint has a genuine confirmation compiles
// with origin `confirmed`; changing the rule in any way voids it.
import { createHash } from 'node:crypto';
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
 * The rules under Tables\Rules. `confirmed` holds the fingerprints of the
 * user's verified confirmations; a matching rule gets origin `confirmed`.
 */
export function readRegistryRules(
  registry: RegistryRuleReader,
  confirmed: ReadonlySet<string> = new Set(),
): { rules: RuleSpec[]; problems: RegistryRuleProblem[] } {
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
