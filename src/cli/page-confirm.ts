// The console page's side of `launcher tables confirm` (docs/console-page.md,
// "On the page"): the table rules waiting for the signed-in person's
// confirmation, and confirming one with their passphrase, typed on the page
// for that rule. As at the terminal, the passphrase is checked by the same
// argon2id login and back-off, and the confirmation is signed with a key
// derived from their disk key (src/dyntable/confirmations.ts); it applies
// from the next launch. The guest cannot reach this: the page is the
// launcher's, behind its token, cookie and origin checks.
import type { Passphrase } from '../auth/passphrase.ts';
import { UsageError } from '../errors.ts';
import type { Session } from '../session/session.ts';
import { dyntablePaths } from '../stick/layout.ts';

/** A rule the page lists: its id (registry:NAME) and what confirming it would show the guest. */
export interface WaitingOnPage {
  id: string;
  text: string;
}

type ConfirmingSession = Pick<Session, 'user' | 'layout' | 'guest' | 'registry'>;

async function loadFor(session: ConfirmingSession & { user: string }) {
  const { loadTable } = await import('../dyntable/namespace.ts');
  return loadTable({ layout: session.layout, guest: session.guest, user: session.user, ...(session.registry ? { registry: session.registry } : {}) });
}

/**
 * The rules waiting for the person, as `launcher tables show` lists them
 * without a passphrase: a rule with a recorded confirmation is left out (it
 * was checked at launch, or confirmed on this page and applies next launch).
 */
export async function waitingOnPage(session: ConfirmingSession): Promise<WaitingOnPage[]> {
  if (!session.user) return [];
  try {
    const loaded = await loadFor({ ...session, user: session.user });
    return loaded.table.waiting
      .filter((rule) => !loaded.recorded.has(rule.fingerprint))
      .map((rule) => ({ id: rule.id, text: `${rule.guestPath} ← ${rule.hostPath} (launcher tables confirm ${rule.name})` }));
  } catch {
    return [];
  }
}

/** Confirms one waiting rule for the session's person; the passphrase is the caller's to zero. */
export async function confirmOnPage(session: ConfirmingSession, id: string, passphrase: Passphrase): Promise<string> {
  if (!session.user) throw new UsageError('this session has no signed-in person to confirm a rule');
  const user = session.user;
  const loaded = await loadFor({ ...session, user });
  const waiting = loaded.table.waiting.find((rule) => rule.id === id && !loaded.recorded.has(rule.fingerprint));
  const rule = waiting && loaded.rules.find((r) => `${r.origin}:${r.name}` === waiting.id);
  if (!waiting || !rule) throw new UsageError(`${id} is not waiting for ${user}'s confirmation`, 'the status lists the rules that are');
  const [{ login }, { recordConfirmation }] = await Promise.all([import('../auth/users.ts'), import('../dyntable/confirmations.ts')]);
  const unlocked = await login(session.layout, user, passphrase);
  try {
    await recordConfirmation(dyntablePaths(session.layout, user).confirmations, rule, unlocked.diskKey, unlocked.id);
  } finally {
    unlocked.diskKey.fill(0);
  }
  return `confirmed ${waiting.guestPath} ← ${waiting.hostPath}: ${waiting.exposes}; it applies from the next launch`;
}
