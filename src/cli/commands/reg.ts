// `launcher reg get|set|del|ls|export|import`: a user's guest registry on the
// stick (src/guestregistry), whether or not a session is running (SQLite's
// file locking lets both use the file; a running guest sees the change).
import { type Command, Option } from 'commander';
import { RegistryError, UsageError } from '../../errors.ts';
import { REG_ROOT } from '../../guestregistry/reg-format.ts';
import type { GuestRegistry } from '../../guestregistry/registry.ts';
import type { RegLayer, RegType } from '../../guestregistry/value.ts';
import { registryPaths, type StickLayout } from '../../stick/layout.ts';
import type { GuestRecord } from '../../guests/guest-store.ts';
import { openStick, resolveStickRoot } from '../../stick/stick-root.ts';
import { requireStickUser } from '../stick-user.ts';
import type { Output } from '../output.ts';
import { jsonOption, stickOption } from './options.ts';

interface RegOptions {
  stick?: string;
  user?: string;
  guest?: string;
  json?: boolean;
  layer?: string;
  type?: RegType;
  key?: string;
  format?: 'regedit4' | 'v5';
}

const TYPES: RegType[] = ['string', 'expand-string', 'int32', 'int64', 'bool', 'binary', 'multi-string'];

/** `@` (or an empty string) names a key's default value, as in .reg files. */
const valueName = (name: string) => (name === '@' ? '' : name);
const shownName = (name: string) => (name === '' ? '@' : name);

/**
 * A key as a person may copy it from an exported file, which writes every key
 * under its root (`[HKEY_POCKETVM\Software\X]`): the root prefix is dropped,
 * the root alone is the whole registry.
 */
export function cliKey(key: string): string {
  const root = `${REG_ROOT}\\`;
  if (key.toUpperCase() === REG_ROOT) return '';
  return key.toUpperCase().startsWith(root) ? key.slice(root.length) : key;
}

async function withRegistry<T>(options: RegOptions, out: Output, fn: (registry: GuestRegistry, user: string) => T | Promise<T>): Promise<T> {
  const layout = await openStick(resolveStickRoot(options.stick));
  const user = await requireStickUser(layout, options.user);
  const { openUserRegistry } = await import('../../guestregistry/user-registry.ts');
  const guest = options.guest ?? 'default';
  const registry = await openUserRegistry({
    paths: registryPaths(layout, user, guest, await payloadOf(layout, guest)),
    hostSalt: layout.hostSalt,
    onRecovery: (recovery) => out.notice(recovery.message),
  });
  try {
    return await fn(registry, user);
  } finally {
    registry.close();
  }
}

/** The payload a guest boots (its record's source; a payload with no record is its own guest): its defaults are the bottom layer. */
async function payloadOf(layout: StickLayout, guest: string): Promise<string> {
  const { guestPaths, readJson } = await import('../../guests/guest-store.ts');
  const record = await readJson<GuestRecord>(guestPaths(layout, guest).record).catch(() => undefined);
  return record?.source.name ?? guest;
}

function writable(layer: string | undefined): 'user' | 'host' {
  return layer === 'host' ? 'host' : 'user';
}

function common(command: Command, options: { layer?: 'write' | 'read' | 'export' } = {}): Command {
  stickOption(command);
  command.option('--user <name>', "whose registry (default: the stick's only user)");
  command.option('--guest <name>', "the guest whose registry it is (each guest has its own; its payload's defaults are the bottom layer)", 'default');
  if (options.layer === 'write')
    command.addOption(new Option('--layer <layer>', 'the layer to write: user, or host (this host only)').choices(['user', 'host']).default('user'));
  if (options.layer === 'read')
    command.addOption(new Option('--layer <layer>', 'read one layer alone instead of the merged view').choices(['defaults', 'user', 'host', 'session']));
  if (options.layer === 'export')
    command.addOption(
      new Option('--layer <layer>', 'one layer alone, or merged: what the guest sees')
        .choices(['merged', 'defaults', 'user', 'host', 'session'])
        .default('merged'),
    );
  jsonOption(command);
  return command;
}

export function registerReg(program: Command, output: () => Output): void {
  const reg = program
    .command('reg')
    .description("a user's guest registry: get, set, del, ls, export, import (layers: defaults < user < host < session)")
    .addHelpText(
      'after',
      '\nKeys are backslash paths (Guest, Tables\\Rules), case-insensitive; "@" names a key\'s default value.\ndocs/registry.md lists the well-known values, the layers and the limits.',
    );

  const get = common(
    reg
      .command('get')
      .description('print a value (from the highest layer that has it)')
      .argument('<key>')
      .argument('<name>', 'the value name; @ for the default value'),
    { layer: 'read' },
  );
  get.action(async (given: string, name: string, options: RegOptions) => {
    const out = output();
    const key = cliKey(given);
    await withRegistry(options, out, async (registry) => {
      const { formatValueText, valueToJson } = await import('../../guestregistry/value.ts');
      const layer = options.layer as RegLayer | undefined;
      const inLayer = layer ? registry.getInLayer(layer, key, valueName(name)) : undefined;
      const found = layer ? (inLayer ? { value: inLayer, layer } : undefined) : registry.get(key, valueName(name));
      if (!found)
        throw new RegistryError(`there is no value ${key}\\${shownName(valueName(name))}${layer ? ` in the ${layer} layer` : ''}`, {
          details: { reason: 'not-found', key, name },
        });
      out.data({ key, name: valueName(name), layer: found.layer, ...valueToJson(found.value) });
      out.line(formatValueText(found.value));
    });
  });

  const set = common(
    reg
      .command('set')
      .description('set a value (creates the key); multi-string: one argument per item')
      .argument('<key>')
      .argument('<name>', 'the value name; @ for the default value')
      .argument('<value...>'),
    { layer: 'write' },
  );
  set.addOption(new Option('--type <type>', 'the value type').choices(TYPES).default('string'));
  set.action(async (given: string, name: string, words: string[], options: RegOptions) => {
    const out = output();
    const key = cliKey(given);
    const { parseValueText, valueToJson } = await import('../../guestregistry/value.ts');
    const type = options.type ?? 'string';
    if (type !== 'multi-string' && words.length !== 1)
      throw new UsageError(`a ${type} value is one argument, not ${words.length}`, 'quote a value with spaces');
    const value = type === 'multi-string' ? { type, data: words } : parseValueText(type, words[0]!);
    await withRegistry(options, out, (registry, user) => {
      registry.set(writable(options.layer), key, valueName(name), value);
      out.data({ user, key, name: valueName(name), layer: writable(options.layer), ...valueToJson(value) });
      out.line(`set ${key}\\${shownName(valueName(name))} (${value.type}) in ${user}'s ${writable(options.layer)} layer`);
    });
  });

  const del = common(
    reg
      .command('del')
      .description('delete a value, or without a name a key with everything under it')
      .argument('<key>')
      .argument('[name]', 'the value name; @ for the default value'),
    { layer: 'write' },
  );
  del.action(async (given: string, name: string | undefined, options: RegOptions) => {
    const out = output();
    const key = cliKey(given);
    await withRegistry(options, out, (registry, user) => {
      const layer = writable(options.layer);
      const deleted = name === undefined ? registry.deleteKey(layer, key) : registry.deleteValue(layer, key, valueName(name));
      const what = name === undefined ? `the key ${key}` : `the value ${key}\\${shownName(valueName(name))}`;
      if (!deleted)
        throw new RegistryError(`there is no ${what.slice(4)} in ${user}'s ${layer} layer`, {
          hint: 'values from the defaults or session layers cannot be deleted',
          details: { reason: 'not-found', key, name, layer },
        });
      const showing = name === undefined ? undefined : registry.get(key, valueName(name));
      out.data({ user, deleted: { key, name: name === undefined ? undefined : valueName(name), layer }, nowVisibleFrom: showing?.layer });
      out.line(`deleted ${what} from ${user}'s ${layer} layer${showing ? ` (the ${showing.layer} layer's value shows now)` : ''}`);
    });
  });

  const ls = common(reg.command('ls').description('list the subkeys and values of a key (the merged view; default: the top)').argument('[key]', 'the key', ''));
  ls.action(async (given: string, options: RegOptions) => {
    const out = output();
    const key = cliKey(given);
    await withRegistry(options, out, async (registry) => {
      const { formatValueText, valueToJson } = await import('../../guestregistry/value.ts');
      if (!registry.hasKey(key)) throw new RegistryError(`there is no key ${key}`, { details: { reason: 'not-found', key } });
      const subkeys = registry.subkeys(key);
      const values = registry.values(key);
      out.data({ key, subkeys, values: values.map((v) => ({ name: v.name, layer: v.layer, ...valueToJson(v.value) })) });
      for (const subkey of subkeys) out.line(`${subkey}\\`);
      const width = Math.min(32, Math.max(0, ...values.map((v) => shownName(v.name).length)));
      for (const v of values) {
        const text = formatValueText(v.value).replace(/\n/g, ' | ');
        out.line(`${shownName(v.name).padEnd(width)}  ${v.value.type.padEnd(13)} ${text.length > 60 ? `${text.slice(0, 57)}...` : text}  (${v.layer})`);
      }
      if (subkeys.length === 0 && values.length === 0) out.line(`(${key === '' ? 'the registry' : key} is empty)`);
    });
  });

  const exportCommand = common(reg.command('export').description('write a .reg file (to stdout without FILE or with -)').argument('[file]'), {
    layer: 'export',
  });
  exportCommand.option('--key <key>', 'only this key and what is under it');
  exportCommand.addOption(
    new Option('--format <format>', 'v5 ("Windows Registry Editor Version 5.00", written UTF-16LE) or regedit4 (UTF-8)')
      .choices(['v5', 'regedit4'])
      .default('v5'),
  );
  exportCommand.action(async (file: string | undefined, options: RegOptions) => {
    const out = output();
    await withRegistry(options, out, async (registry, user) => {
      const { encodeRegFile } = await import('../../guestregistry/reg-format.ts');
      const format = options.format ?? 'v5';
      const key = options.key === undefined ? '' : cliKey(options.key);
      const text = registry.exportReg({ ...(key ? { key } : {}), layer: (options.layer ?? 'merged') as RegLayer | 'merged', format });
      if (file === undefined || file === '-') {
        if (out.json) out.data({ user, format, text });
        else process.stdout.write(text);
        return;
      }
      const bytes = encodeRegFile(text, format);
      const { writeFile } = await import('node:fs/promises');
      await writeFile(file, bytes);
      out.data({ user, file, format, bytes: bytes.length });
      out.line(`exported ${user}'s registry (${options.layer ?? 'merged'}) to ${file}`);
    });
  });

  const importCommand = common(reg.command('import').description('apply a .reg file to a layer, all or nothing (- reads stdin)').argument('<file>'), {
    layer: 'write',
  });
  importCommand.action(async (file: string, options: RegOptions) => {
    const out = output();
    const { decodeRegFile } = await import('../../guestregistry/reg-format.ts');
    let bytes: Buffer;
    if (file === '-') {
      const chunks: Buffer[] = [];
      for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
      bytes = Buffer.concat(chunks);
    } else {
      const { readFile } = await import('node:fs/promises');
      bytes = await readFile(file).catch((error: NodeJS.ErrnoException) => {
        throw new UsageError(`cannot read ${file}: ${error.code === 'ENOENT' ? 'no such file' : error.message}`);
      });
    }
    await withRegistry(options, out, (registry, user) => {
      const layer = writable(options.layer);
      const counts = registry.importReg(decodeRegFile(bytes), layer, { source: file === '-' ? 'stdin' : file });
      out.data({ user, layer, ...counts });
      out.line(
        `imported into ${user}'s ${layer} layer: ${counts.keys} keys, ${counts.values} values, ${counts.deletions} deletions${counts.skipped ? `; skipped ${counts.skipped} values under Host\\ (the session's read-only facts)` : ''}`,
      );
    });
  });
}
