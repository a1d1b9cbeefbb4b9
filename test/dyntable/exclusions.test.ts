import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { compileTable } from '../../src/dyntable/compile.ts';
import { defaultExclusions, ExclusionMatcher } from '../../src/dyntable/exclusions.ts';
import { foldedComponents } from '../../src/dyntable/host-paths.ts';
import { NamespaceBackend } from '../../src/dyntable/namespace-backend.ts';
import { Errno, OpenFlags } from '../../src/ninep/backend.ts';
import { randomBytes, randomUUID } from 'node:crypto';
import { readConfirmationRecords, recordConfirmation, trustedConfirmations } from '../../src/dyntable/confirmations.ts';
import { readRegistryRules, ruleFingerprint, type RegistryRuleReader } from '../../src/dyntable/registry-rules.ts';
import { resolvePath } from '../../src/dyntable/resolver.ts';
import type { RuleSpec } from '../../src/dyntable/rules.ts';
import { liveHost, removeDir, snapshotTree, tempDir } from './helpers.ts';

/** Every default Linux secret, as a file to create below the home folder. */
const LINUX_SECRETS = [
  '.ssh/id_ed25519',
  '.gnupg/private-keys-v1.d/key.key',
  '.mozilla/firefox/abc.default/logins.json',
  '.thunderbird/x.default/key4.db',
  '.config/google-chrome/Default/Login Data',
  '.config/chromium/Default/Cookies',
  '.config/BraveSoftware/Brave-Browser/Default/Cookies',
  '.config/microsoft-edge/Default/Cookies',
  '.config/vivaldi/Default/Cookies',
  '.config/opera/Cookies',
  'snap/firefox/common/.mozilla/firefox/profiles.ini',
  'snap/chromium/common/chromium/Default/Cookies',
  '.var/app/org.mozilla.firefox/.mozilla/firefox/profiles.ini',
  '.local/share/keyrings/login.keyring',
  '.local/share/kwalletd/kdewallet.kwl',
  '.pki/nssdb/key4.db',
  '.password-store/bank.gpg',
  '.netrc',
  '.git-credentials',
  '.config/git/credentials',
  '.docker/config.json',
  '.npmrc',
  '.pypirc',
  '.cargo/credentials.toml',
  '.config/gh/hosts.yml',
  '.aws/credentials',
  '.config/gcloud/credentials.db',
  '.azure/msal_token_cache.json',
  '.kube/config',
  '.oci/config',
  '.config/doctl/config.yaml',
  '.terraform.d/credentials.tfrc.json',
];

async function errnoOf(promise: Promise<unknown>): Promise<number | undefined> {
  try {
    await promise;
    return undefined;
  } catch (error) {
    return (error as { errno?: number }).errno ?? -1;
  }
}

async function names(backend: NamespaceBackend, path: string): Promise<string[]> {
  const h = await backend.open(path, OpenFlags.RDONLY);
  const out: string[] = [];
  // A listing streams in batches, in no sorted order.
  for (let batch = await h.readdir(0, 10_000); batch.length > 0; batch = await h.readdir(batch.at(-1)!.offset, 10_000)) out.push(...batch.map((e) => e.name));
  await h.close();
  return out.sort();
}

describe('dyntable exclusions', () => {
  let base: string;
  let home: string;
  let backend: NamespaceBackend | undefined;

  beforeEach(() => {
    base = tempDir();
    home = join(base, 'home', 'me');
    for (const secret of LINUX_SECRETS) {
      mkdirSync(dirname(join(home, secret)), { recursive: true });
      writeFileSync(join(home, secret), `secret ${secret}`);
    }
    mkdirSync(join(home, '.config', 'harmless'), { recursive: true });
    writeFileSync(join(home, '.config', 'harmless', 'settings.ini'), 'ok');
    writeFileSync(join(home, 'notes.txt'), 'ok');
    mkdirSync(join(base, 'home', 'bob'));
    writeFileSync(join(base, 'home', 'bob', 'diary.txt'), "bob's");
  });

  afterEach(async () => {
    await backend?.close();
    backend = undefined;
    removeDir(base);
  });

  // Rules the person confirmed: a registry FET rule applies only then.
  const rule = (r: Partial<RuleSpec> & Pick<RuleSpec, 'name' | 'table' | 'guestPath'>): RuleSpec => ({ origin: 'confirmed', source: 'test', ...r });

  it("a folder's compiled child test answers as the full match does, and is absent where nothing can match", () => {
    for (const os of ['linux', 'windows'] as const) {
      const windows = os === 'windows';
      const home = windows ? 'C:\\Users\\me' : '/home/me';
      const rules = { style: windows ? ('win32' as const) : ('posix' as const), caseInsensitive: windows };
      const exclusions = defaultExclusions({ os, pathStyle: rules.style, home, env: {}, stickRoot: windows ? 'E:\\' : '/media/me/STICK' });
      const matcher = new ExclusionMatcher(exclusions, rules);
      const sep = windows ? '\\' : '/';
      const folders = windows
        ? [
            'C:\\Users',
            'C:\\Users\\me',
            'C:\\Users\\me\\Documents',
            'C:\\Users\\me\\AppData\\Roaming',
            'C:\\Users\\me\\AppData\\Roaming\\Microsoft',
            'C:\\Users\\other',
          ]
        : ['/home', '/home/me', '/home/me/Documents', '/home/me/.config', '/home/me/.local/share', '/home/other', '/', '/media/me', '/proc'];
      const names = [
        '.ssh',
        '.SSH',
        'me',
        'other',
        'Public',
        'a.txt',
        'gh',
        'keyrings',
        'Credentials',
        'Mozilla',
        'STICK',
        'self',
        'x',
        'google-chrome',
        'Documents',
      ];
      for (const folder of folders) {
        const parts = foldedComponents(folder, rules);
        for (const exposed of [[], ['ssh', 'other-homes']]) {
          const test = matcher.childTest(parts, exposed);
          for (const name of names) {
            const expected = matcher.match(`${folder}${folder.endsWith(sep) ? '' : sep}${name}`, exposed) !== undefined;
            const got = test?.(matcher.fold(name)) ?? false;
            assert.equal(got, expected, `${os} ${folder} ${name} exposed ${exposed.join(',')}`);
          }
        }
      }
      // Most folders have no excluded children at all: nothing to check per name.
      assert.equal(matcher.childTest(foldedComponents(windows ? 'C:\\Users\\me\\Documents' : '/home/me/Documents', rules)), undefined);
    }
  });

  it('lists every category for each host OS', () => {
    for (const os of ['linux', 'darwin', 'windows'] as const) {
      const home = os === 'windows' ? 'C:\\Users\\me' : os === 'darwin' ? '/Users/me' : '/home/me';
      const list = defaultExclusions({
        os,
        pathStyle: os === 'windows' ? 'win32' : 'posix',
        home,
        env: {},
        stickRoot: os === 'windows' ? 'E:\\' : '/media/me/STICK',
      });
      const categories = new Set(list.map((e) => e.category));
      for (const c of ['ssh-keys', 'gpg-keys', 'browser-profile', 'keychain', 'credentials', 'cloud-credentials', 'other-users', 'pocketvm'])
        assert.ok(categories.has(c as never), `${os} lacks ${c}`);
      assert.equal(new Set(list.map((e) => e.id)).size, list.length, `${os}: ids are unique`);
    }
    const win = defaultExclusions({ os: 'windows', pathStyle: 'win32', home: 'C:\\Users\\me', env: { LOCALAPPDATA: 'D:\\Local' } });
    assert.ok(win.some((e) => e.hostPath === 'C:\\Users\\me\\AppData\\Roaming\\Mozilla'));
    assert.ok(win.some((e) => e.hostPath === 'D:\\Local\\Google\\Chrome'));
    const mac = defaultExclusions({ os: 'darwin', pathStyle: 'posix', home: '/Users/me', env: {} });
    assert.ok(mac.some((e) => e.hostPath === '/Users/me/Library/Keychains'));
    assert.ok(mac.some((e) => e.hostPath === '/Users/me/Library/Application Support/Google'));
  });

  it('makes each default secret invisible even when the whole home is mapped; the host stays untouched', async () => {
    const before = snapshotTree(home);
    const table = compileTable(liveHost(home), [
      rule({ name: 'Home', table: 'FET', guestPath: '/host/home', hostPath: '~' }),
      rule({ name: 'Homes', table: 'FET', guestPath: '/host/homes', hostPath: join(base, 'home'), mode: 'readonly' }),
    ]);
    assert.deepEqual(table.skipped, []);
    backend = await NamespaceBackend.open({ table, filesDir: join(base, 'files'), upperDir: join(base, 'upper') });
    for (const secret of LINUX_SECRETS) {
      assert.equal(await errnoOf(backend.getattr(`/home/${secret}`)), Errno.ENOENT, secret);
      assert.equal(await errnoOf(backend.open(`/home/${secret}`, OpenFlags.RDONLY)), Errno.ENOENT, secret);
      const explained = resolvePath(table, `/host/home/${secret}`);
      assert.ok(explained.kind === 'entry' && explained.excludedBy, `explain says ${secret} is excluded`);
    }
    const top = await names(backend, '/home');
    for (const hidden of [
      '.ssh',
      '.gnupg',
      '.mozilla',
      '.thunderbird',
      '.pki',
      '.password-store',
      '.netrc',
      '.git-credentials',
      '.npmrc',
      '.pypirc',
      '.aws',
      '.azure',
      '.kube',
      '.oci',
    ])
      assert.ok(!top.includes(hidden), hidden);
    assert.ok(top.includes('.config') && top.includes('notes.txt') && top.includes('.docker') && top.includes('snap'));
    const config = await names(backend, '/home/.config');
    assert.deepEqual(config, ['git', 'harmless']);
    assert.deepEqual(await names(backend, '/home/.config/git'), []);
    assert.deepEqual(await names(backend, '/home/.docker'), []);
    assert.deepEqual(await names(backend, '/home/.terraform.d'), []);
    // Other users' homes, through a rule on their parent.
    assert.deepEqual(await names(backend, '/homes'), ['me']);
    assert.equal(await errnoOf(backend.getattr('/homes/bob/diary.txt')), Errno.ENOENT);
    // Creating a name the host hides gives the guest its own, empty, folder.
    await backend.mkdir('/home', '.ssh', 0o700, 0);
    assert.deepEqual(await names(backend, '/home/.ssh'), []);
    await backend.close();
    backend = undefined;
    assert.deepEqual(snapshotTree(home), before);
  });

  it('a confirmed registry rule exposes exactly what it names, and only through itself', async () => {
    const confirmations = join(base, 'stick', 'tables-confirmed.json');
    const values: Record<string, Array<{ name: string; value: { type: string; data: unknown } }>> = {
      'Tables\\Rules\\Keys': [
        { name: 'Table', value: { type: 'string', data: 'FET' } },
        { name: 'GuestPath', value: { type: 'string', data: '\\host\\keys' } },
        { name: 'HostPath', value: { type: 'string', data: '~/.ssh' } },
        { name: 'mode', value: { type: 'string', data: 'readonly' } },
      ],
      'Tables\\Rules\\Home': [
        { name: 'Table', value: { type: 'string', data: 'FET' } },
        { name: 'GuestPath', value: { type: 'string', data: '/host/home' } },
        { name: 'HostPath', value: { type: 'string', data: '{home}' } },
      ],
      'Tables\\Rules\\Off': [
        { name: 'Table', value: { type: 'string', data: 'FIT' } },
        { name: 'GuestPath', value: { type: 'string', data: '/host/off' } },
        { name: 'Enabled', value: { type: 'bool', data: false } },
      ],
      'Tables\\Rules\\Broken': [{ name: 'Table', value: { type: 'string', data: 'XYZ' } }],
    };
    const registry: RegistryRuleReader = {
      subkeys: (key) => (key.toLowerCase() === 'tables\\rules' ? ['Keys', 'Home', 'Off', 'Broken'] : []),
      values: (key) => values[key] ?? [],
    };
    const diskKey = randomBytes(32);
    const userId = randomUUID();
    const trusted = async () => (await trustedConfirmations(confirmations, diskKey, userId)).trusted;
    // Unconfirmed: both FET rules wait for the person; Keys would lift the SSH exclusion.
    let read = readRegistryRules(registry, await trusted());
    assert.deepEqual(
      read.problems.map((p) => p.key),
      ['Tables\\Rules\\Broken'],
    );
    assert.deepEqual(
      read.rules.map((r) => [r.name, r.origin]),
      [
        ['Keys', 'registry'],
        ['Home', 'registry'],
      ],
    );
    let table = compileTable(liveHost(home), read.rules);
    assert.deepEqual(
      table.entries.map((e) => e.id),
      [],
    );
    assert.deepEqual(
      table.waiting.map((w) => [w.id, w.lifts]),
      [
        ['registry:Keys', ['ssh']],
        ['registry:Home', []],
      ],
    );
    assert.match(table.waiting[0]!.exposes, /SSH keys/);

    // Confirmed at the launcher: exposed, read-only, through /host/keys only.
    await recordConfirmation(confirmations, read.rules[0]!, diskKey, userId);
    await recordConfirmation(confirmations, read.rules[1]!, diskKey, userId);
    read = readRegistryRules(registry, await trusted());
    assert.equal(read.rules[0]!.origin, 'confirmed');
    table = compileTable(liveHost(home), read.rules);
    assert.deepEqual(
      table.entries.map((e) => [e.id, e.exposes]),
      [
        ['confirmed:Home', []],
        ['confirmed:Keys', ['ssh']],
      ],
    );
    backend = await NamespaceBackend.open({ table, filesDir: join(base, 'files'), upperDir: join(base, 'upper') });
    assert.deepEqual(await names(backend, '/keys'), ['id_ed25519']);
    const h = await backend.open('/keys/id_ed25519', OpenFlags.RDONLY);
    const buf = Buffer.alloc(100);
    assert.equal(buf.subarray(0, await h.read(buf, 0)).toString(), 'secret .ssh/id_ed25519');
    await h.close();
    assert.equal(await errnoOf(backend.open('/keys/id_ed25519', OpenFlags.RDWR)), Errno.EROFS);
    assert.equal(await errnoOf(backend.getattr('/home/.ssh/id_ed25519')), Errno.ENOENT);

    // Any change to the rule voids the confirmation.
    values['Tables\\Rules\\Keys']![3] = { name: 'Mode', value: { type: 'string', data: 'cow' } };
    read = readRegistryRules(registry, await trusted());
    assert.equal(read.rules[0]!.origin, 'registry');
    assert.notEqual(ruleFingerprint(read.rules[0]!), (await readConfirmationRecords(confirmations))[0]!.fingerprint);
  });
});
