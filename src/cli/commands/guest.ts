// `launcher guest create|config|install|uninstall|delete|clone|list`: several
// guests on one stick, each with a zone-style lifecycle (src/guests/,
// docs/guests.md). Parsing and presentation only.
import type { Command } from 'commander';
import { UsageError } from '../../errors.ts';
import type { StickLayout } from '../../stick/layout.ts';
import { assertWritable, openStick, resolveStickRoot } from '../../stick/stick-root.ts';
import type { Output } from '../output.ts';
import { jsonOption, stickOption } from './options.ts';
import { registerGuestPower } from './guest-power.ts';

interface GuestOptions {
  user?: string;
  passphraseStdin?: boolean;
  stick?: string;
  json?: boolean;
  yes?: boolean;
  from?: string;
  table?: string;
  mode?: string;
}

async function stick(options: GuestOptions, writes: boolean): Promise<StickLayout> {
  const layout = await openStick(resolveStickRoot(options.stick));
  if (writes) await assertWritable(layout.root);
  return layout;
}

/** --user and --passphrase-stdin: who asks, on a stick with an owner (src/guests/guest-admins.ts). */
function signInOptions(command: Command): Command {
  return command
    .option('--user <name>', 'sign in as this user (needed on a stick with an owner)')
    .option('--passphrase-stdin', 'read the passphrase from the first line of stdin (for scripts)');
}

/**
 * The signed-in user's name and the stick's administrators; `ask` checked
 * (exit 32 when not permitted). Nobody signs in on a stick without an owner
 * unless --user says so; with one, a terminal is asked.
 */
async function signIn(out: Output, layout: StickLayout, options: GuestOptions, ask?: import('../../guests/guest-admins.ts').Ask) {
  const { readAdmins, writeAdmins, authorize, grant, revoke, forgetGuest, parseRights, visibleTo } = await import('../../guests/guest-admins.ts');
  const admins = { readAdmins, writeAdmins, authorize, grant, revoke, forgetGuest, parseRights, visibleTo };
  const current = await admins.readAdmins(layout);
  let user: string | undefined;
  if (options.user !== undefined || options.passphraseStdin || (current.owner !== undefined && process.stdin.isTTY)) {
    const { loginForLaunch } = await import('../login.ts');
    const unlocked = await loginForLaunch(out, layout.root, options);
    unlocked.diskKey.fill(0);
    user = unlocked.name;
  }
  if (ask) admins.authorize(current, user, ask);
  return { user, admins: current, lib: admins };
}

const CONFIG_ACTIONS = ['show', 'set', 'add', 'remove', 'verify', 'commit', 'revert'] as const;

function describeConfig(config: import('../../guests/guest-config.ts').GuestConfig, defaultMac: string): string[] {
  const lines = [
    `memory   ${config.memoryMiB === undefined ? 'auto (sized from the host)' : `${config.memoryMiB} MiB`}`,
    `cpus     ${config.cpus ?? 'auto (sized from the host)'}`,
    `network  ${config.network}${config.network === 'none' ? '' : `, MAC ${config.mac ?? `${defaultMac} (the default)`}`}`,
    `display  ${config.display}`,
  ];
  for (const s of config.shares)
    lines.push(`share    ${s.name}: ${s.guestPath} ${s.table === 'FIT' ? 'from the stick' : `from host ${s.hostPath} (${s.mode ?? 'cow'})`}`);
  for (const d of config.disks) lines.push(`disk     ${d.name}: ${d.sizeMiB} MiB`);
  for (const d of config.devices) lines.push(`device   ${d.name}: ${d.kind}`);
  return lines;
}

export function registerGuest(program: Command, output: () => Output): void {
  const guest = program.command('guest').description('the guests on this stick: create, config, install, uninstall, clone, delete, list');

  const create = guest
    .command('create')
    .description('make a new guest (configured) from a payload on the stick or a catalog image (launcher image list)')
    .argument('<name>')
    .option('--from <payload|image>', "the payload it boots, or a catalog image (name or sha256) whose system it runs over each user's own overlay", 'default');
  stickOption(create);
  signInOptions(create);
  jsonOption(create);
  create.action(async (name: string, options: GuestOptions) => {
    const out = output();
    const layout = await stick(options, true);
    await signIn(out, layout, options, { global: 'create guests' });
    const { createGuest } = await import('../../guests/guest-lifecycle.ts');
    const record = await createGuest(layout, name, options.from ?? 'default');
    out.data({
      name,
      state: 'configured',
      source: record.source,
      config: record.config,
      ...(record.fromDescriptor ? { fromDescriptor: record.fromDescriptor } : {}),
    });
    out.line(`created guest ${name} from ${record.source.kind} ${record.source.name}: configured; next: launcher guest install ${name}`);
    if (record.fromDescriptor) {
      const { describeFromDescriptor } = await import('../../guests/described-config.ts');
      for (const line of describeFromDescriptor(record.fromDescriptor)) out.line(`  from ${record.fromDescriptor.image}'s descriptor: ${line}`);
    }
  });

  const config = guest
    .command('config')
    .description("show, change (staged), verify, commit or revert a guest's configuration")
    .argument('<name>')
    .argument('<action>', CONFIG_ACTIONS.join('|'))
    .argument('[args...]', 'set PROPERTY VALUE | add share|disk|device NAME ... | remove share|disk|device NAME')
    .option('--table <FIT|FET>', 'add share: FIT (from the stick) or FET (from a host folder; the default with a HOSTPATH)')
    .option('--mode <cow|readonly>', 'add share: a host folder copy-on-write (default) or read-only');
  stickOption(config);
  signInOptions(config);
  jsonOption(config);
  config.action(async (name: string, action: string, args: string[], options: GuestOptions) => {
    const out = output();
    if (!(CONFIG_ACTIONS as readonly string[]).includes(action))
      throw new UsageError(`"${action}" is not a guest config action`, `the actions are ${CONFIG_ACTIONS.join(', ')}`);
    const layout = await stick(options, action !== 'show' && action !== 'verify');
    await signIn(out, layout, options, { guest: name, right: 'manage', says: 'configure' });
    const lifecycle = await import('../../guests/guest-lifecycle.ts');
    const configs = await import('../../guests/guest-config.ts');
    const { GuestConfigError } = await import('../../errors.ts');
    const noArgs = () => {
      if (args.length > 0) throw new UsageError(`guest config ${action} takes no more arguments`, `launcher guest config ${name} ${action}`);
    };
    switch (action) {
      case 'show': {
        noArgs();
        const view = await lifecycle.requireGuest(layout, name);
        const verification = await lifecycle.verifyGuest(layout, name);
        const { readJson, guestPaths } = await import('../../guests/guest-store.ts');
        const record = await readJson<import('../../guests/guest-store.ts').GuestRecord>(guestPaths(layout, name).record);
        const committed = record!.config;
        const fromDescriptor = record!.fromDescriptor;
        const changes = verification.staged ? configs.describeChanges(committed, verification.config) : [];
        out.data({
          name,
          state: view.state,
          committed,
          ...(verification.staged ? { staged: verification.config, changes } : {}),
          problems: verification.problems,
          ...(fromDescriptor ? { fromDescriptor } : {}),
        });
        out.line(`guest ${name} (${view.state.replace('_', ' ')}), committed configuration:`);
        const { USER_NETWORK_MAC } = await import('../../vmm/qemu-args.ts');
        for (const line of describeConfig(committed, USER_NETWORK_MAC)) out.line(`  ${line}`);
        if (fromDescriptor) {
          const { describeFromDescriptor } = await import('../../guests/described-config.ts');
          out.line(`made with what ${fromDescriptor.image}'s descriptor (${fromDescriptor.source}) said:`);
          for (const line of describeFromDescriptor(fromDescriptor)) out.line(`  ${line}`);
        }
        if (changes.length > 0) {
          out.line('staged, not committed (guest config NAME commit|revert):');
          for (const line of changes) out.line(`  ${line}`);
        }
        for (const problem of verification.problems) out.line(`  problem: ${problem}`);
        return;
      }
      case 'set': {
        const [property, value, ...rest] = args;
        if (property === undefined || value === undefined || rest.length > 0)
          throw new UsageError('guest config NAME set takes PROPERTY VALUE', `the properties are ${configs.SETTABLE.join(', ')}`);
        const staged = await lifecycle.stageChange(layout, name, (c) => configs.setProperty(c, property, value));
        out.data({ name, staged });
        out.line(`staged ${property} = ${value} for ${name}; guest config ${name} commit applies it`);
        return;
      }
      case 'add': {
        const [kind, resource, ...rest] = args;
        if (kind === undefined || resource === undefined)
          throw new UsageError('guest config NAME add takes share|disk|device NAME ...', 'e.g. add share docs /host/docs /home/me/Documents');
        const staged = await lifecycle.stageChange(layout, name, (c) =>
          configs.addResource(c, {
            kind,
            name: resource,
            args: rest,
            ...(options.table ? { table: options.table } : {}),
            ...(options.mode ? { mode: options.mode } : {}),
          }),
        );
        out.data({ name, staged });
        out.line(`staged ${kind} ${resource} for ${name}; guest config ${name} commit applies it`);
        return;
      }
      case 'remove': {
        const [kind, resource, ...rest] = args;
        if (kind === undefined || resource === undefined || rest.length > 0) throw new UsageError('guest config NAME remove takes share|disk|device NAME', '');
        const staged = await lifecycle.stageChange(layout, name, (c) => configs.removeResource(c, kind, resource));
        out.data({ name, staged });
        out.line(`staged the removal of ${kind} ${resource} from ${name}; guest config ${name} commit applies it`);
        return;
      }
      case 'verify': {
        noArgs();
        const verification = await lifecycle.verifyGuest(layout, name);
        if (verification.problems.length > 0) throw lifecycle.problemsError(name, verification.problems, false);
        out.data({ name, staged: verification.staged, problems: [] });
        out.line(`${verification.staged ? 'the staged' : 'the committed'} configuration of ${name} is valid`);
        return;
      }
      case 'commit': {
        noArgs();
        const result = await lifecycle.commitGuest(layout, name);
        out.data({ name, ...result });
        out.line(
          result.committed
            ? `committed ${name}'s configuration${result.appliesAtNextBoot ? '; it applies from the next boot' : ''}`
            : `nothing staged for ${name}: its configuration is unchanged`,
        );
        return;
      }
      case 'revert': {
        noArgs();
        const result = await lifecycle.revertGuest(layout, name);
        out.data({ name, ...result });
        out.line(result.reverted ? `dropped the staged changes of ${name}` : `nothing staged for ${name}`);
        return;
      }
    }
    throw new GuestConfigError('unreachable', {});
  });

  const install = guest.command('install').description("check the guest's payload and pin it (configured or incomplete → installed)").argument('<name>');
  stickOption(install);
  signInOptions(install);
  jsonOption(install);
  install.action(async (name: string, options: GuestOptions) => {
    const out = output();
    const layout = await stick(options, true);
    await signIn(out, layout, options, { global: 'install guests' });
    const { installGuest } = await import('../../guests/guest-lifecycle.ts');
    const record = await installGuest(layout, name);
    out.data({ name, state: 'installed', install: record });
    out.line(`installed guest ${name} (${record.source.kind} ${record.source.name}, ${Object.keys(record.files).length} files checked)`);
  });

  for (const [verb, what] of [
    ['uninstall', "remove what install put in place and every user's disk for the guest (installed or incomplete → configured)"],
    ['delete', "remove the guest, its configuration and every user's disk for it"],
  ] as const) {
    const command = guest.command(verb).description(what).argument('<name>').option('--yes', "delete users' personal disks for the guest without asking");
    stickOption(command);
    signInOptions(command);
    jsonOption(command);
    command.action(async (name: string, options: GuestOptions) => {
      const out = output();
      const layout = await stick(options, true);
      const signed = await signIn(out, layout, options, { global: `${verb} guests` });
      const lifecycle = await import('../../guests/guest-lifecycle.ts');
      const result =
        verb === 'uninstall'
          ? await lifecycle.uninstallGuest(layout, name, { yes: options.yes === true })
          : await lifecycle.deleteGuest(layout, name, { yes: options.yes === true });
      // Nobody keeps rights on a guest that is gone: a new one of the same name starts with none.
      if (verb === 'delete') await signed.lib.writeAdmins(layout, signed.lib.forgetGuest(await signed.lib.readAdmins(layout), name));
      out.data({ name, state: verb === 'uninstall' ? 'configured' : 'deleted', ...result });
      const data = result.removedUserData.length > 0 ? ` and the personal disks of ${result.removedUserData.join(', ')}` : '';
      out.line(verb === 'uninstall' ? `uninstalled guest ${name}${data}: configured` : `deleted guest ${name}${data}`);
    });
  }

  const clone = guest.command('clone').description("a new installed guest with SRC's configuration, sharing its payload").argument('<src>').argument('<new>');
  stickOption(clone);
  signInOptions(clone);
  jsonOption(clone);
  clone.action(async (from: string, name: string, options: GuestOptions) => {
    const out = output();
    const layout = await stick(options, true);
    const signed = await signIn(out, layout, options, { guest: from, right: 'clone', says: 'clone' });
    const { cloneGuest } = await import('../../guests/guest-lifecycle.ts');
    const record = await cloneGuest(layout, from, name);
    // A guest administrator who clones administers the copy with the rights they hold on the original.
    if (signed.user !== undefined && signed.admins.owner !== undefined && signed.user !== signed.admins.owner) {
      const rights = signed.admins.grants[signed.user]?.[from] ?? [];
      await signed.lib.writeAdmins(layout, signed.lib.grant(await signed.lib.readAdmins(layout), signed.user, name, rights));
    }
    out.data({ name, state: 'installed', clonedFrom: from, source: record.source });
    out.line(`cloned ${from} to ${name}: installed, sharing ${record.source.kind} ${record.source.name}`);
  });

  const owner = guest
    .command('owner')
    .description("make USER the stick's owner, its global administrator (the first time: signed in as USER; later: as the owner)")
    .argument('<user>');
  stickOption(owner);
  signInOptions(owner);
  jsonOption(owner);
  owner.action(async (user: string, options: GuestOptions) => {
    const out = output();
    const layout = await stick(options, true);
    const signed = await signIn(out, layout, options, { global: "change the stick's owner" });
    const { userExists } = await import('../../auth/users.ts');
    if (!(await userExists(layout, user))) throw new UsageError(`there is no user "${user}" on this stick`, 'launcher user add NAME makes one');
    // Without an owner yet, the new owner proves it is them: the first owner is never set by someone else.
    if (signed.admins.owner === undefined && signed.user !== user)
      throw new UsageError(`sign in as ${user} to make ${user} the owner`, `launcher guest owner ${user} --user ${user}`);
    await signed.lib.writeAdmins(layout, { ...signed.admins, owner: user });
    out.data({ owner: user });
    out.line(`${user} owns this stick now: the global administrator of its guests`);
  });

  for (const [verb, what] of [
    ['grant', 'give USER rights on GUEST (login, manage, clone, export, suspend): a guest administrator'],
    ['revoke', "take USER's rights on GUEST away (all of them when none is named)"],
  ] as const) {
    const command = guest
      .command(verb)
      .description(what)
      .argument('<user>')
      .argument('<guest>')
      .argument(verb === 'grant' ? '<rights...>' : '[rights...]');
    stickOption(command);
    signInOptions(command);
    jsonOption(command);
    command.action(async (user: string, name: string, words: string[], options: GuestOptions) => {
      const out = output();
      const layout = await stick(options, true);
      const signed = await signIn(out, layout, options, { global: 'grant or revoke rights' });
      const rights = verb === 'grant' || words.length > 0 ? signed.lib.parseRights(words) : [];
      if (verb === 'grant') {
        const { userExists } = await import('../../auth/users.ts');
        if (!(await userExists(layout, user))) throw new UsageError(`there is no user "${user}" on this stick`, 'launcher user add NAME makes one');
        await (await import('../../guests/guest-lifecycle.ts')).requireGuest(layout, name);
      }
      const next = verb === 'grant' ? signed.lib.grant(signed.admins, user, name, rights) : signed.lib.revoke(signed.admins, user, name, rights);
      await signed.lib.writeAdmins(layout, next);
      const now = next.grants[user]?.[name] ?? [];
      out.data({ user, guest: name, rights: now });
      out.line(`${user} on ${name}: ${now.length > 0 ? now.join(', ') : 'no rights'}`);
    });
  }

  const quota = guest
    .command('quota')
    .description("a user's memory and disk quotas (set: the stick's owner; see docs/guests.md, Per-user quotas); every user's without USER")
    .argument('[user]')
    .option('--memory <size>', "cap the memory of the user's running guests together (2G, 512M; none lifts it)")
    .option('--disk <size>', "cap what the user's guests hold on the stick (4G; none lifts it)");
  stickOption(quota);
  signInOptions(quota);
  jsonOption(quota);
  quota.action(async (user: string | undefined, options: GuestOptions & { memory?: string; disk?: string }) => {
    const out = output();
    const setting = options.memory !== undefined || options.disk !== undefined;
    const layout = await stick(options, setting);
    const lib = await import('../../session/user-quotas.ts');
    // Setting, or seeing someone else's, is the owner's; a user may see their own.
    const signed = await signIn(out, layout, options);
    if (setting || user === undefined || signed.user !== user)
      signed.lib.authorize(signed.admins, signed.user, { global: setting ? 'set quotas' : "see other users' quotas" });
    if (setting) {
      if (user === undefined) throw new UsageError('name the user whose quota to set', 'launcher guest quota USER --memory 2G --disk 4G');
      const { userExists } = await import('../../auth/users.ts');
      if (!(await userExists(layout, user))) throw new UsageError(`there is no user "${user}" on this stick`, 'launcher user add NAME makes one');
      const change: Partial<Record<'memoryMiB' | 'diskMiB', number | undefined>> = {};
      if (options.memory !== undefined) change.memoryMiB = lib.parseQuotaSize(options.memory, 'memory');
      if (options.disk !== undefined) change.diskMiB = lib.parseQuotaSize(options.disk, 'disk');
      await signed.lib.writeAdmins(layout, lib.setQuota(await signed.lib.readAdmins(layout), user, change));
    }
    const admins = await signed.lib.readAdmins(layout);
    const users = user !== undefined ? [user] : Object.keys(admins.quotas ?? {}).sort();
    const { quotaUse } = await import('../../guests/quota-use.ts');
    const views = await Promise.all(users.map(async (name) => ({ user: name, ...lib.quotaOf(admins, name), used: await quotaUse(layout, name) })));
    out.data(user !== undefined ? views[0] : views);
    if (views.length === 0) out.line('no user has a quota on this stick (launcher guest quota USER --memory 2G --disk 4G sets one)');
    for (const v of views)
      out.line(
        `${v.user.padEnd(16)} memory ${v.memoryMiB === undefined ? 'no quota' : `${v.memoryMiB} MiB`} (running: ${v.used.memoryMiB} MiB); disk ${v.diskMiB === undefined ? 'no quota' : `${v.diskMiB} MiB`} (held: ${v.used.diskMiB} MiB)`,
      );
  });

  const list = guest.command('list').description('every guest on the stick and its state');
  stickOption(list);
  signInOptions(list);
  jsonOption(list);
  list.action(async (options: GuestOptions) => {
    const out = output();
    const layout = await stick(options, false);
    const { listGuests } = await import('../../guests/guest-view.ts');
    const signed = await signIn(out, layout, options);
    // A guest administrator sees the guests granted to them, and no other.
    const guests = signed.lib.visibleTo(signed.admins, signed.user, await listGuests(layout));
    out.data(guests);
    if (guests.length === 0) out.line('no guests on this stick (launcher guest create NAME makes one)');
    for (const g of guests) {
      const notes = [
        g.source ? `${g.source.kind} ${g.source.name}` : undefined,
        g.implicit ? 'no record (launcher guest create to manage it)' : undefined,
        g.user ? `user ${g.user}` : undefined,
        g.busy ? `being changed by launcher ${g.busy.command} (pid ${g.busy.pid})` : undefined,
        g.staged ? 'changes staged' : undefined,
        g.reason,
      ].filter((note) => note !== undefined);
      out.line(`${g.name.padEnd(16)} ${g.state.replace('_', ' ').padEnd(14)} ${notes.join('; ')}`);
    }
  });
  // ready, boot, halt, reboot, shutdown, suspend: src/cli/commands/guest-power.ts.
  registerGuestPower(guest, output);
}
