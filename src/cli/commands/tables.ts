// `launcher tables show|explain|confirm`: the dynamic tables (src/dyntable/):
// which guest paths come from the stick (FIT), which from the host (FET), what
// is excluded, which rules wait for the person's confirmation, and why a
// given path resolves the way it does. Confirming takes the passphrase: the
// confirmation is signed with a key derived from the user's disk key
// (src/dyntable/confirmations.ts), so the stick alone cannot forge one.
import type { Command } from 'commander';
import { UsageError } from '../../errors.ts';
import type { LoadedTable } from '../../dyntable/namespace.ts';
import type { CompiledTable, TableEntry } from '../../dyntable/rules.ts';
import type { StickLayout } from '../../stick/layout.ts';
import { openStick, resolveStickRoot } from '../../stick/stick-root.ts';
import { findStickUser } from '../stick-user.ts';
import { bold, dim, type Output } from '../output.ts';
import { guestOption, jsonOption, stickOption } from './options.ts';

interface TablesOptions {
  stick?: string;
  user?: string;
  guest?: string;
  json?: boolean;
  yes?: boolean;
  revoke?: boolean;
  passphraseStdin?: boolean;
}

interface Loaded extends LoadedTable {
  layout: StickLayout;
  user: string | undefined;
  /** Whether recorded confirmations were checked with the user's key (a login). */
  checked: boolean;
}

/**
 * The table as a launch would compile it. With --passphrase-stdin the user
 * logs in and their confirmations are checked as at launch; without, no
 * confirmation is trusted (the file alone proves nothing) and waiting rules
 * with a recorded confirmation say so.
 */
async function load(out: Output, options: TablesOptions): Promise<Loaded> {
  const layout = await openStick(resolveStickRoot(options.stick));
  const user = await findStickUser(layout, options.user);
  const { loadTable } = await import('../../dyntable/namespace.ts');
  let confirmed: Set<string> | undefined;
  if (user && options.passphraseStdin) {
    const [{ loginForLaunch }, { trustedConfirmations }, { dyntablePaths }] = await Promise.all([
      import('../login.ts'),
      import('../../dyntable/confirmations.ts'),
      import('../../stick/layout.ts'),
    ]);
    const unlocked = await loginForLaunch(out, layout.root, { user, passphraseStdin: true });
    try {
      const checked = await trustedConfirmations(dyntablePaths(layout, user).confirmations, unlocked.diskKey, unlocked.id);
      for (const refused of checked.refused) out.notice(refused.message);
      confirmed = checked.trusted;
    } finally {
      unlocked.diskKey.fill(0);
    }
  }
  const loaded = await loadTable({ layout, guest: options.guest ?? 'default', ...(user ? { user } : {}), ...(confirmed ? { confirmed } : {}) });
  return { ...loaded, layout, user, checked: confirmed !== undefined };
}

function targetText(entry: TableEntry): string {
  return entry.target.kind === 'host' ? entry.target.hostPath : entry.target.display;
}

function modeText(entry: TableEntry): string {
  return entry.mode === 'stick' ? 'stick' : entry.mode === 'cow' ? 'copy-on-write' : 'read-only';
}

function printTable(out: Output, table: CompiledTable, loaded: Loaded, user: string | undefined): void {
  const h = table.host;
  out.line(`${bold('dynamic tables')}  mounted in the guest at ${table.mountPoint}${user ? `, user ${user}` : ''}`);
  out.line(dim(`host ${h.os}, home ${h.home}, names ${h.caseInsensitive ? 'case-insensitive' : 'case-sensitive'}`));
  out.line();
  if (table.entries.length === 0) out.line('no entries: the guest sees an empty namespace');
  const rows = table.entries.map((e) => [e.guestPath, e.table, modeText(e), targetText(e), `${e.origin} ${dim(e.source)}`]);
  const header = ['GUEST PATH', 'TABLE', 'MODE', 'SOURCE', 'ORIGIN'];
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((r) => r[i]!.length)));
  if (rows.length) out.line(dim(header.map((title, i) => title.padEnd(widths[i]!)).join('  ')));
  for (const row of rows) out.line(row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  '));
  for (const e of table.entries) if (e.exposes.length) out.line(`  ${e.guestPath}: confirmed, exposes ${e.exposes.join(', ')}`);
  if (table.waiting.length) {
    out.line();
    out.line(`${bold('needs confirmation')} ${dim('(not in the table until you run: launcher tables confirm RULE)')}`);
    for (const w of table.waiting) {
      out.line(`  ${w.id} ${dim(`(${w.guestPath} ← ${w.template})`)}: ${w.why}`);
      out.line(`    would expose ${w.exposes}`);
      if (loaded.recorded.has(w.fingerprint) && !loaded.checked)
        out.line(dim('    a confirmation is recorded: it is checked with your passphrase at launch (tables show --passphrase-stdin checks it now)'));
    }
  }
  if (table.skipped.length) {
    out.line();
    out.line(bold('not in the table'));
    for (const s of table.skipped) out.line(`  ${s.id} ${dim(`(${s.guestPath})`)}: ${s.reason}`);
  }
  if (table.problems.length || loaded.registryProblems.length) {
    out.line();
    out.line(bold('problems'));
    for (const p of table.problems) out.line(`  ${p.severity}: ${p.message}`);
    for (const p of loaded.registryProblems) out.line(`  error: ${p.key}: ${p.message}`);
  }
  out.line();
  const byCategory = new Map<string, string[]>();
  for (const e of table.exclusions) byCategory.set(e.category, [...(byCategory.get(e.category) ?? []), e.hostPath]);
  out.line(`${bold('excluded by default')} ${dim('(invisible unless a confirmed rule names them)')}`);
  for (const [category, paths] of byCategory)
    out.line(`  ${category.padEnd(18)} ${paths.join(', ')}${category === 'pseudo-fs' || category === 'pocketvm' ? dim(' (never served)') : ''}`);
  for (const note of loaded.notes) out.line(dim(`note: ${note}`));
}

export function registerTables(program: Command, output: () => Output): void {
  const tables = program.command('tables').description('the dynamic tables: which guest paths come from the stick (FIT) or the host (FET), and why');

  const show = tables.command('show').description('print the compiled table for this host: entries, skipped rules, problems, exclusions');
  show.option('--user <name>', "include this user's registry rules (default: the only user of the stick)");
  show.option('--passphrase-stdin', "log in (passphrase on stdin) and check the user's confirmations as a launch does");
  stickOption(show);
  guestOption(show);
  jsonOption(show);
  show.action(async (options: TablesOptions) => {
    const out = output();
    const loaded = await load(out, options);
    const waiting = loaded.table.waiting.map((w) => ({ ...w, confirmationRecorded: loaded.recorded.has(w.fingerprint) }));
    out.data({
      user: loaded.user ?? null,
      ...loaded.table,
      waiting,
      confirmationsChecked: loaded.checked,
      registryProblems: loaded.registryProblems,
      notes: loaded.notes,
    });
    printTable(out, loaded.table, loaded, loaded.user);
  });

  const explain = tables
    .command('explain')
    .description('say which entry resolves a guest path, to where, read-only or copy-on-write, and why')
    .argument('<guest-path>', 'e.g. /host/Documents/report.odt (a path without a leading / is taken below the mount point)');
  explain.option('--user <name>', "include this user's registry rules (default: the only user of the stick)");
  explain.option('--passphrase-stdin', "log in (passphrase on stdin) and check the user's confirmations as a launch does");
  stickOption(explain);
  guestOption(explain);
  jsonOption(explain);
  explain.action(async (guestPath: string, options: TablesOptions) => {
    const out = output();
    const loaded = await load(out, options);
    const { resolvePath, resolutionJson } = await import('../../dyntable/resolver.ts');
    const path = /^[\\/]/.test(guestPath) ? guestPath : `${loaded.table.mountPoint}/${guestPath}`;
    const r = resolvePath(loaded.table, path);
    out.data(resolutionJson(r));
    out.line(bold(r.guestPath));
    if (r.kind === 'unmapped') {
      out.line(`  not in the namespace: ${r.reason}`);
      const waiting = loaded.table.waiting.find((w) => r.guestPath === w.guestPath || r.guestPath.startsWith(`${w.guestPath}/`));
      if (waiting) out.line(`  waiting   ${waiting.id} would map it once confirmed (launcher tables confirm ${waiting.id})`);
      return;
    }
    if (r.kind === 'virtual') {
      out.line('  a virtual folder (read-only) of the namespace');
      out.line(`  why       ${r.reason}`);
      return;
    }
    const e = r.entry;
    out.line(`  entry     ${e.table} ${e.guestPath}  ${dim(`${e.id}, ${e.source}`)}`);
    out.line(
      `  from      ${r.hostPath !== undefined ? `the host: ${r.hostPath}` : `the stick: ${e.target.kind === 'stick' ? e.target.display : ''}${r.relative.length ? `/${r.relative.join('/')}` : ''}`}`,
    );
    out.line(
      `  access    ${r.excludedBy ? 'none: invisible to the guest' : e.mode === 'stick' ? 'read-write, kept on the stick' : e.mode === 'cow' ? 'copy-on-write: host read, changes kept on the stick in upper/' : 'read-only (EROFS on any change)'}`,
    );
    out.line(`  why       ${r.reason}`);
    if (r.reservedChildren.length) out.line(`  note      leads to more specific entries: ${r.reservedChildren.join(', ')}`);
  });

  const confirm = tables
    .command('confirm')
    .description(
      'confirm a rule that would widen what the guest sees (any FET rule from the guest registry, a host folder outside the known folders, a default exclusion); takes your passphrase, the guest cannot do this',
    )
    .argument('<rule>', 'the rule: its name under Tables\\Rules, or its id from tables show (registry:NAME, manifest:NAME)')
    .option('--user <name>', 'whose rule (default: the only user of the stick)')
    .option('--passphrase-stdin', 'read the passphrase from the first line of stdin (for scripts; needs --yes)')
    .option('--revoke', 'withdraw the confirmation (takes the passphrase too: so an older copy of the file cannot bring it back)')
    .option('--yes', 'do not ask before confirming');
  stickOption(confirm);
  guestOption(confirm);
  jsonOption(confirm);
  confirm.action(async (ruleName: string, options: TablesOptions) => {
    const out = output();
    const layout = await openStick(resolveStickRoot(options.stick));
    const user = await findStickUser(layout, options.user);
    if (!user) throw new UsageError('say whose rule with --user NAME');
    const [{ loadTable }, { compileTable }, { dyntablePaths }, confirmations] = await Promise.all([
      import('../../dyntable/namespace.ts'),
      import('../../dyntable/compile.ts'),
      import('../../stick/layout.ts'),
      import('../../dyntable/confirmations.ts'),
    ]);
    const loaded = await loadTable({ layout, user, guest: options.guest ?? 'default' });
    const wanted = ruleName.toLowerCase();
    const rule = loaded.rules.find(
      (r) => r.origin !== 'builtin' && (`${r.origin}:${r.name}`.toLowerCase() === wanted || (r.origin === 'registry' && r.name.toLowerCase() === wanted)),
    );
    if (!rule)
      throw new UsageError(
        `${user} has no usable rule ${ruleName} (Tables\\Rules\\NAME, or registry:NAME / manifest:NAME)`,
        'launcher tables show --user NAME lists the rules, those waiting for confirmation and their problems',
      );
    if (rule.table !== 'FET') throw new UsageError(`${rule.origin}:${rule.name} is a FIT rule: it reads from the stick and needs no confirmation`);
    const file = dyntablePaths(layout, user).confirmations;
    const exposing = compileTable(loaded.host, [{ ...rule, origin: 'confirmed' }], { stickUser: user });
    const exposes = exposing.entries[0]?.exposes ?? [];
    const waiting = loaded.table.waiting.find((w) => w.id === `${rule.origin}:${rule.name}`);
    const text = `${rule.table} ${rule.guestPath} ← ${rule.hostPath ?? 'stick'} (${rule.mode ?? 'cow'})${exposes.length ? `, exposing ${exposes.join(', ')}` : ''}`;
    if (options.revoke) {
      const { loginForLaunch } = await import('../login.ts');
      const unlocked = await loginForLaunch(out, layout.root, { user, ...(options.passphraseStdin ? { passphraseStdin: true } : {}) });
      let withdrawn: boolean;
      try {
        withdrawn = await confirmations.withdrawConfirmation(file, rule, unlocked.diskKey, unlocked.id);
      } finally {
        unlocked.diskKey.fill(0);
      }
      out.data({ rule: rule.name, id: `${rule.origin}:${rule.name}`, user, confirmed: false, withdrawn });
      out.line(withdrawn ? `withdrew the confirmation of ${text}` : `${text} was not confirmed; nothing was changed`);
      return;
    }
    if (!options.yes) {
      if (!process.stdin.isTTY || options.passphraseStdin) throw new UsageError(`confirming ${text} needs --yes without a terminal; nothing was changed`);
      if (waiting) out.line(`${waiting.id} would expose ${waiting.exposes}`);
      const { confirm: ask } = await import('@inquirer/prompts');
      if (!(await ask({ message: `let the guest see ${text}?`, default: false }, { output: process.stderr }))) {
        out.line('nothing was changed');
        return;
      }
    }
    const { loginForLaunch } = await import('../login.ts');
    const unlocked = await loginForLaunch(out, layout.root, { user, ...(options.passphraseStdin ? { passphraseStdin: true } : {}) });
    let dropped;
    try {
      ({ dropped } = await confirmations.recordConfirmation(file, rule, unlocked.diskKey, unlocked.id));
    } finally {
      unlocked.diskKey.fill(0);
    }
    for (const refused of dropped) out.notice(`${refused.message.replace(/; it is ignored.*$/, '')}: removed`);
    out.data({
      rule: rule.name,
      id: `${rule.origin}:${rule.name}`,
      user,
      confirmed: true,
      exposes,
      ...(waiting ? { wouldExpose: waiting.exposes } : {}),
      skipped: exposing.skipped,
      removedForged: dropped.length,
    });
    out.line(`confirmed ${text}; it applies from the next launch`);
    for (const s of exposing.skipped) out.notice(`it still does not apply: ${s.reason}`);
  });
}
