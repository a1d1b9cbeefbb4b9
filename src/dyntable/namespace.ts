// The dyntable stage of a launch, in two calls: loadTable compiles the rules
// of this host, payload and user into the table (also what `launcher tables`
// prints), openNamespace puts the NamespaceBackend on top of it for the 9P
// server. Both take what earlier stages produced; nothing here reaches back.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { GuestRegistry } from '../guestregistry/registry.ts';
import { loadManifest, type GuestManifest } from '../payload/guest-manifest.ts';
import { dyntablePaths, registryPaths, type StickLayout } from '../stick/layout.ts';
import { builtinRules, compileTable, manifestRules } from './compile.ts';
import { NamespaceBackend } from './namespace-backend.ts';
import { discoverHostContext, type HostContext } from './name-mapping.ts';
import { readConfirmationRecords } from './confirmations.ts';
import { readRegistryRules, ruleFingerprint, type RegistryRuleProblem, type RegistryRuleReader } from './registry-rules.ts';
import type { CompiledTable, RuleSpec } from './rules.ts';
import type { StoreQuota } from './store-quota.ts';

export interface LoadTableOptions {
  layout: StickLayout;
  /** The logged-in (or named) user: their registry rules and confirmations count. */
  user?: string;
  /** Whose manifest rules count (default `default`). */
  guest?: string;
  /** The user's registry if the caller holds it open (the session does); else it is opened read-only-ish and closed. */
  registry?: RegistryRuleReader;
  /** The guest's manifest if already loaded. */
  manifest?: Pick<GuestManifest, 'tables'>;
  /** The host, if already read (tests). */
  host?: HostContext;
  /**
   * Fingerprints of the user's confirmations whose signature was checked
   * with their key after login (confirmations.ts trustedConfirmations).
   * Without it no rule counts as confirmed: the file alone is never trusted.
   */
  confirmed?: ReadonlySet<string>;
}

export interface LoadedTable {
  table: CompiledTable;
  host: HostContext;
  /** What could not be read, in a word each (registry rules with bad values, a missing payload). */
  notes: string[];
  registryProblems: RegistryRuleProblem[];
  /** Every rule that went into the compiler (to find one by name). */
  rules: RuleSpec[];
  /** Fingerprints recorded in the user's confirmation file, not checked (for `tables show` without a passphrase). */
  recorded: Set<string>;
}

export async function loadTable(options: LoadTableOptions): Promise<LoadedTable> {
  const { layout, user, guest = 'default' } = options;
  const host = options.host ?? (await discoverHostContext({ stickRoot: layout.root }));
  const notes: string[] = [];
  const rules: RuleSpec[] = builtinRules();

  let manifest = options.manifest;
  const manifestFile = join(layout.payloadRoot, guest, 'guest.json');
  if (!manifest) {
    if (existsSync(manifestFile)) {
      try {
        manifest = await loadManifest(join(layout.payloadRoot, guest));
      } catch (error) {
        notes.push(`the ${guest} payload manifest was not read: ${(error as Error).message}`);
      }
    } else {
      notes.push(`no payload ${guest} on this stick: no manifest rules`);
    }
  }
  const confirmed = options.confirmed ?? new Set<string>();
  if (manifest)
    rules.push(
      ...manifestRules(manifest, `payload/${guest}/guest.json`).map((rule) => (confirmed.has(ruleFingerprint(rule)) ? { ...rule, confirmed: true } : rule)),
    );

  let registryProblems: RegistryRuleProblem[] = [];
  let recorded = new Set<string>();
  if (user) {
    const paths = dyntablePaths(layout, user, guest);
    recorded = new Set((await readConfirmationRecords(paths.confirmations)).map((c) => c.fingerprint));
    let registry = options.registry;
    let opened: GuestRegistry | undefined;
    if (!registry && existsSync(registryPaths(layout, user, guest).file)) {
      const { openUserRegistry } = await import('../guestregistry/user-registry.ts');
      opened = await openUserRegistry({ paths: registryPaths(layout, user, guest), hostSalt: layout.hostSalt });
      registry = opened;
    }
    try {
      if (registry) {
        const read = readRegistryRules(registry, confirmed);
        rules.push(...read.rules);
        registryProblems = read.problems;
      } else {
        notes.push(`${user} has no registry yet: no registry rules`);
      }
    } finally {
      opened?.close();
    }
  } else {
    notes.push('no user given: registry rules are not included (--user NAME)');
  }
  const table = compileTable(host, rules, user ? { stickUser: user } : {});
  return { table, host, notes, registryProblems, rules, recorded };
}

export interface OpenNamespaceOptions extends LoadTableOptions {
  user: string;
  /** Owner of new files and virtual folders as the guest sees them (the guest user, e.g. 1000:1000). */
  owner?: { uid: number; gid: number };
  /** Show host files as owned by `owner` too (default: on Windows hosts only). */
  mapHostOwner?: boolean;
  /** The user's at-rest key: files/ and upper/ are sealed (sealed/keys.ts). */
  atRestKey?: Buffer;
  /** The user's quota for files/ and upper/ (store-quota.ts). */
  quota?: StoreQuota;
}

/** The compiled table and the backend serving it (close the backend at teardown). */
export async function openNamespace(options: OpenNamespaceOptions): Promise<LoadedTable & { backend: NamespaceBackend }> {
  const loaded = await loadTable(options);
  const paths = dyntablePaths(options.layout, options.user, options.guest);
  const backend = await NamespaceBackend.open({
    table: loaded.table,
    filesDir: paths.filesDir,
    upperDir: paths.upperDir,
    ...(options.owner ? { owner: options.owner } : {}),
    ...(options.mapHostOwner === undefined ? {} : { mapHostOwner: options.mapHostOwner }),
    ...(options.atRestKey ? { atRestKey: options.atRestKey } : {}),
    ...(options.quota ? { quota: options.quota } : {}),
  });
  return { ...loaded, backend };
}
