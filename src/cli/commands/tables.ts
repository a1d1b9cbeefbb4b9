// `launcher tables show|explain|confirm`: the dynamic tables (src/dyntable/):
// which guest paths come from the stick (FIT), which from the host (FET), what
// is excluded, and why a given path resolves the way it does.
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
}

async function load(options: TablesOptions): Promise<LoadedTable & { layout: StickLayout; user: string | undefined }> {
  const layout = await openStick(resolveStickRoot(options.stick));
  const user = await findStickUser(layout, options.user);
  const { loadTable } = await import('../../dyntable/namespace.ts');
  const loaded = await loadTable({ layout, guest: options.guest ?? 'default', ...(user ? { user } : {}) });
  return { ...loaded, layout, user };
}

function targetText(entry: TableEntry): string {
  return entry.target.kind === 'host' ? entry.target.hostPath : entry.target.display;
}

function modeText(entry: TableEntry): string {
  return entry.mode === 'stick' ? 'stick' : entry.mode === 'cow' ? 'copy-on-write' : 'read-only';
}

function printTable(out: Output, table: CompiledTable, loaded: LoadedTable, user: string | undefined): void {
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
  for (const [category, paths] of byCategory) out.line(`  ${category.padEnd(18)} ${paths.join(', ')}`);
  for (const note of loaded.notes) out.line(dim(`note: ${note}`));
}

export function registerTables(program: Command, output: () => Output): void {
  const tables = program.command('tables').description('the dynamic tables: which guest paths come from the stick (FIT) or the host (FET), and why');

  const show = tables.command('show').description('print the compiled table for this host: entries, skipped rules, problems, exclusions');
  show.option('--user <name>', "include this user's registry rules (default: the only user of the stick)");
  stickOption(show);
  guestOption(show);
  jsonOption(show);
  show.action(async (options: TablesOptions) => {
    const out = output();
    const loaded = await load(options);
    out.data({ user: loaded.user ?? null, ...loaded.table, registryProblems: loaded.registryProblems, notes: loaded.notes });
    printTable(out, loaded.table, loaded, loaded.user);
  });

  const explain = tables.command('explain').description('say which entry resolves a guest path, to where, read-only or copy-on-write, and why').argument('<guest-path>', 'e.g. /host/Documents/report.odt (a path without a leading / is taken below the mount point)');
  explain.option('--user <name>', "include this user's registry rules (default: the only user of the stick)");
  stickOption(explain);
  guestOption(explain);
  jsonOption(explain);
  explain.action(async (guestPath: string, options: TablesOptions) => {
    const out = output();
    const loaded = await load(options);
    const { resolvePath, resolutionJson } = await import('../../dyntable/resolver.ts');
    const path = /^[\\/]/.test(guestPath) ? guestPath : `${loaded.table.mountPoint}/${guestPath}`;
    const r = resolvePath(loaded.table, path);
    out.data(resolutionJson(r));
    out.line(bold(r.guestPath));
    if (r.kind === 'unmapped') {
      out.line(`  not in the namespace: ${r.reason}`);
      return;
    }
    if (r.kind === 'virtual') {
      out.line('  a virtual folder (read-only) of the namespace');
      out.line(`  why       ${r.reason}`);
      return;
    }
    const e = r.entry;
    out.line(`  entry     ${e.table} ${e.guestPath}  ${dim(`${e.id}, ${e.source}`)}`);
    out.line(`  from      ${r.hostPath !== undefined ? `the host: ${r.hostPath}` : `the stick: ${e.target.kind === 'stick' ? e.target.display : ''}${r.relative.length ? `/${r.relative.join('/')}` : ''}`}`);
    out.line(`  access    ${r.excludedBy ? 'none: invisible to the guest' : e.mode === 'stick' ? 'read-write, kept on the stick' : e.mode === 'cow' ? 'copy-on-write: host read, changes kept on the stick in upper/' : 'read-only (EROFS on any change)'}`);
    out.line(`  why       ${r.reason}`);
    if (r.reservedChildren.length) out.line(`  note      leads to more specific entries: ${r.reservedChildren.join(', ')}`);
  });

  const confirm = tables
    .command('confirm')
    .description("confirm a registry rule (Tables\\Rules\\RULE) so it may expose a folder excluded by default; the guest cannot do this itself")
    .argument('<rule>', 'the rule name under Tables\\Rules')
    .option('--user <name>', 'whose rule (default: the only user of the stick)')
    .option('--revoke', 'withdraw the confirmation')
    .option('--yes', 'do not ask');
  stickOption(confirm);
  guestOption(confirm);
  jsonOption(confirm);
  confirm.action(async (ruleName: string, options: TablesOptions) => {
    const out = output();
    const layout = await openStick(resolveStickRoot(options.stick));
    const user = await findStickUser(layout, options.user);
    if (!user) throw new UsageError('say whose rule with --user NAME');
    const { openUserRegistry } = await import('../../guestregistry/user-registry.ts');
    const { readRegistryRules, writeConfirmation } = await import('../../dyntable/registry-rules.ts');
    const { dyntablePaths } = await import('../../stick/layout.ts');
    const registry = await openUserRegistry({ layout, user, guest: options.guest ?? 'default' });
    let rule;
    try {
      rule = readRegistryRules(registry).rules.find((r) => r.name.toLowerCase() === ruleName.toLowerCase());
    } finally {
      registry.close();
    }
    if (!rule) throw new UsageError(`${user} has no usable rule Tables\\Rules\\${ruleName}`, 'launcher tables show --user NAME lists the rules and their problems');
    const { compileTable } = await import('../../dyntable/compile.ts');
    const { discoverHostContext } = await import('../../dyntable/name-mapping.ts');
    const table = compileTable(await discoverHostContext({ stickRoot: layout.root }), [{ ...rule, origin: 'confirmed' }]);
    const exposes = table.entries[0]?.exposes ?? [];
    const text = `${rule.table} ${rule.guestPath} ← ${rule.hostPath ?? 'stick'} (${rule.mode ?? 'cow'})${exposes.length ? `, exposing ${exposes.join(', ')}` : ''}`;
    if (!options.revoke && !options.yes) {
      if (!process.stdin.isTTY) throw new UsageError(`confirming ${text} needs --yes without a terminal; nothing was changed`);
      const { confirm: ask } = await import('@inquirer/prompts');
      if (!(await ask({ message: `let the guest see ${text}?`, default: false }, { output: process.stderr }))) {
        out.line('nothing was changed');
        return;
      }
    }
    await writeConfirmation(dyntablePaths(layout, user).confirmations, rule, options.revoke === true);
    out.data({ rule: rule.name, user, confirmed: !options.revoke, exposes, skipped: table.skipped });
    out.line(`${options.revoke ? 'withdrew the confirmation of' : 'confirmed'} ${text}`);
    for (const s of table.skipped) out.notice(`it still does not apply: ${s.reason}`);
  });
}
