import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { builtinRules, compileTable } from '../../src/dyntable/compile.ts';
import { defaultExclusions, ExclusionMatcher } from '../../src/dyntable/exclusions.ts';
import { isHostPathWithin } from '../../src/dyntable/host-paths.ts';
import { knownFoldersDarwin } from '../../src/dyntable/known-folders-darwin.ts';
import { knownFoldersLinux, parseUserDirs } from '../../src/dyntable/known-folders-linux.ts';
import { expandWindowsEnv, knownFoldersWindows, readUserShellFolders } from '../../src/dyntable/known-folders-windows.ts';
import { discoverHostContext, expandHostTemplate, probeCaseInsensitive } from '../../src/dyntable/name-mapping.ts';
import { resolvePath } from '../../src/dyntable/resolver.ts';
import { parseRegQuery } from '../../src/platform/probe-source.ts';
import { fakeHost, removeDir, tempDir } from './helpers.ts';

const fixture = (name: string) => readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8');

describe('dyntable name mapping', () => {
  describe('Linux: XDG user directories (live, temporary HOME)', () => {
    let home: string;
    beforeEach(() => {
      home = tempDir('pocketvm-home-');
    });
    afterEach(() => removeDir(home));

    it('maps localised folders from user-dirs.dirs to stable guest names', async () => {
      for (const d of ['Dokumente', 'Downloads', 'Schreibtisch', 'Bilder', 'Videos', 'Musik']) mkdirSync(join(home, d));
      mkdirSync(join(home, '.config'));
      writeFileSync(
        join(home, '.config', 'user-dirs.dirs'),
        [
          '# This file is written by xdg-user-dirs-update',
          'XDG_DESKTOP_DIR="$HOME/Schreibtisch"',
          'XDG_DOWNLOAD_DIR="$HOME/Downloads"',
          'XDG_TEMPLATES_DIR="$HOME/Vorlagen"',
          'XDG_PUBLICSHARE_DIR="$HOME/Öffentlich"',
          'XDG_DOCUMENTS_DIR="$HOME/Dokumente"',
          'XDG_MUSIC_DIR="$HOME/"',
          `XDG_PICTURES_DIR="${home}/Bilder"`,
          'XDG_VIDEOS_DIR="$HOME/Videos"',
          '',
        ].join('\n'),
      );
      const host = await discoverHostContext({ home, env: { HOME: home } });
      assert.equal(host.os, 'linux');
      assert.equal(host.knownFolders.folders.Documents?.hostPath, join(home, 'Dokumente'));
      assert.equal(host.knownFolders.folders.Desktop?.hostPath, join(home, 'Schreibtisch'));
      assert.equal(host.knownFolders.folders.Pictures?.hostPath, join(home, 'Bilder'));
      assert.match(host.knownFolders.folders.Documents!.how, /XDG_DOCUMENTS_DIR in .*user-dirs.dirs/);
      // $HOME itself means "disabled": the home is never mapped whole.
      assert.equal(host.knownFolders.folders.Music, undefined);
      assert.ok(host.knownFolders.notes.some((n) => /Music: XDG_MUSIC_DIR is the home folder itself/.test(n)));

      const table = compileTable(host, builtinRules());
      const map = Object.fromEntries(table.entries.map((e) => [e.guestPath, e.target.kind === 'host' ? e.target.hostPath : '']));
      assert.deepEqual(map, {
        '/host/Desktop': join(home, 'Schreibtisch'),
        '/host/Documents': join(home, 'Dokumente'),
        '/host/Downloads': join(home, 'Downloads'),
        '/host/Pictures': join(home, 'Bilder'),
        '/host/Videos': join(home, 'Videos'),
      });
      const r = resolvePath(table, '/host/Documents/brief.odt');
      assert.equal(r.kind === 'entry' && r.hostPath, join(home, 'Dokumente', 'brief.odt'));
    });

    it('falls back to English names without user-dirs.dirs, and honours XDG_CONFIG_HOME', async () => {
      mkdirSync(join(home, 'Documents'));
      let host = await discoverHostContext({ home, env: { HOME: home } });
      assert.match(host.knownFolders.folders.Documents!.how, /default ~\/Documents \(no /);
      assert.deepEqual(
        compileTable(host, builtinRules()).entries.map((e) => e.guestPath),
        ['/host/Documents'],
      );
      mkdirSync(join(home, 'cfg'));
      mkdirSync(join(home, 'Docs'));
      writeFileSync(join(home, 'cfg', 'user-dirs.dirs'), 'XDG_DOCUMENTS_DIR="$HOME/Docs"\n');
      host = await discoverHostContext({ home, env: { HOME: home, XDG_CONFIG_HOME: join(home, 'cfg') } });
      assert.equal(host.knownFolders.folders.Documents?.hostPath, join(home, 'Docs'));
    });

    it('parses quoting the way xdg-user-dir does', () => {
      const parsed = parseUserDirs('XDG_DOCUMENTS_DIR="$HOME/My \\"Docs\\""\nXDG_VIDEOS_DIR=relative/ignored\n  XDG_DOWNLOAD_DIR = "/data/dl/"\n', '/home/me');
      assert.equal(parsed.get('Documents')?.path, '/home/me/My "Docs"');
      assert.equal(parsed.get('Videos'), undefined);
      assert.equal(parsed.get('Downloads')?.path, '/data/dl');
      const scan = knownFoldersLinux('/home/me', {}, undefined);
      assert.equal(scan.folders.Videos?.hostPath, '/home/me/Videos');
    });

    it('this file system is case-sensitive, and the probe says so', () => {
      mkdirSync(join(home, 'Documents'));
      assert.equal(probeCaseInsensitive(join(home, 'Documents')), false);
    });
  });

  describe('Windows: User Shell Folders (recorded registry values)', () => {
    const env = { USERPROFILE: 'C:\\Users\\Anna', APPDATA: 'C:\\Users\\Anna\\AppData\\Roaming', LOCALAPPDATA: 'C:\\Users\\Anna\\AppData\\Local' };

    it('expands the recorded values, including redirects to OneDrive and another drive', async () => {
      const values = await readUserShellFolders({ registryValues: async () => parseRegQuery(fixture('windows-user-shell-folders.txt')) });
      const scan = knownFoldersWindows(values, env, env.USERPROFILE);
      assert.equal(scan.folders.Documents?.hostPath, 'C:\\Users\\Anna\\OneDrive\\Documents');
      assert.equal(scan.folders.Pictures?.hostPath, 'C:\\Users\\Anna\\OneDrive\\Pictures');
      assert.equal(scan.folders.Downloads?.hostPath, 'D:\\Downloads');
      assert.equal(scan.folders.Desktop?.hostPath, 'C:\\Users\\Anna\\Desktop');
      assert.equal(scan.folders.Videos?.hostPath, 'C:\\Users\\Anna\\Videos');
      assert.match(scan.folders.Documents!.how, /User Shell Folders\\Personal = %USERPROFILE%\\OneDrive\\Documents/);
    });

    it('falls back to %USERPROFILE%\\<Name> when the registry cannot be read', async () => {
      const values = await readUserShellFolders({ registryValues: async () => undefined });
      const scan = knownFoldersWindows(values, env, env.USERPROFILE);
      assert.equal(scan.folders.Music?.hostPath, 'C:\\Users\\Anna\\Music');
      assert.match(scan.folders.Music!.how, /registry not readable/);
      assert.equal(expandWindowsEnv('%userprofile%\\x %NOPE%', env), 'C:\\Users\\Anna\\x %NOPE%');
    });

    it('compiles stable guest names and matches host paths case-insensitively', async () => {
      const values = await readUserShellFolders({ registryValues: async () => parseRegQuery(fixture('windows-user-shell-folders.txt')) });
      const knownFolders = knownFoldersWindows(values, env, env.USERPROFILE);
      // The probe answers in a different case, as NTFS does.
      const host = fakeHost({
        os: 'windows',
        home: env.USERPROFILE,
        env,
        knownFolders,
        dirs: ['c:\\users\\anna\\onedrive\\documents', 'd:\\downloads', 'C:\\USERS\\ANNA\\DESKTOP'],
      });
      const table = compileTable(host, builtinRules());
      assert.deepEqual(
        table.entries.map((e) => e.guestPath),
        ['/host/Desktop', '/host/Documents', '/host/Downloads'],
      );
      const r = resolvePath(table, '/host/Documents/Report.docx');
      assert.equal(r.kind === 'entry' && r.hostPath, 'C:\\Users\\Anna\\OneDrive\\Documents\\Report.docx');
      // Exclusions match in any case, and through Windows' trailing-dot aliasing.
      const matcher = new ExclusionMatcher(table.exclusions, { style: 'win32', caseInsensitive: true });
      assert.equal(matcher.match('c:\\USERS\\anna\\.SSH\\id_rsa')?.id, 'ssh');
      assert.equal(matcher.match('C:\\Users\\Anna\\AppData\\Roaming\\mozilla.\\Firefox')?.id, 'firefox');
      assert.equal(matcher.match('C:\\Users\\Bob\\Documents')?.id, 'other-homes');
      assert.equal(matcher.match('C:\\Users\\Public\\Documents'), undefined);
      assert.equal(matcher.match('C:\\Users\\Anna\\Documents\\x'), undefined);
      assert.ok(isHostPathWithin('c:\\users\\ANNA\\x', 'C:\\Users\\Anna', { style: 'win32', caseInsensitive: true }));
    });
  });

  describe('macOS: the home layout', () => {
    it('uses ~/Movies for Videos and the spelling the folder really has', () => {
      const scan = knownFoldersDarwin('/Users/me', ['Desktop', 'documents', 'Downloads', 'Library', 'Movies', 'Music', 'Pictures', '.ssh']);
      assert.equal(scan.folders.Videos?.hostPath, '/Users/me/Movies');
      assert.equal(scan.folders.Documents?.hostPath, '/Users/me/documents');
      const host = fakeHost({ os: 'darwin', knownFolders: scan, dirs: ['/Users/me/Movies', '/users/me/DOCUMENTS'] });
      const table = compileTable(host, builtinRules());
      assert.deepEqual(
        table.entries.map((e) => [e.guestPath, e.target.kind === 'host' && e.target.hostPath]),
        [
          ['/host/Documents', '/Users/me/documents'],
          ['/host/Videos', '/Users/me/Movies'],
        ],
      );
      const matcher = new ExclusionMatcher(defaultExclusions({ os: 'darwin', pathStyle: 'posix', home: '/Users/me', env: {} }), {
        style: 'posix',
        caseInsensitive: true,
      });
      assert.equal(matcher.match('/Users/me/Library/KEYCHAINS/login.keychain-db')?.id, 'keychains');
      assert.equal(matcher.match('/users/me/library/application support/google/chrome/Default')?.id, 'chrome');
      assert.equal(matcher.match('/Users/Shared/x'), undefined);
      assert.equal(matcher.match('/Users/other/x')?.id, 'other-homes');
    });
  });

  describe('host path templates', () => {
    const host = fakeHost({
      knownFolders: {
        folders: { Documents: { id: 'Documents', hostPath: '/home/me/Dokumente', how: 'XDG' } },
        notes: ['Music: XDG_MUSIC_DIR is the home folder itself (disabled), not mapped'],
      },
    });
    it('expands known folders, ~ and {home}; refuses .. and relative paths', () => {
      assert.deepEqual(expandHostTemplate('{documents}/Work', host), { ok: true, hostPath: '/home/me/Dokumente/Work', how: 'XDG' });
      assert.equal(expandHostTemplate('~', host).ok && (expandHostTemplate('~', host) as { hostPath: string }).hostPath, '/home/me');
      assert.equal((expandHostTemplate('{home}\\src', host) as { hostPath: string }).hostPath, '/home/me/src');
      assert.equal((expandHostTemplate('/srv/data', host) as { hostPath: string }).hostPath, '/srv/data');
      assert.match((expandHostTemplate('{Music}', host) as { reason: string }).reason, /disabled/);
      assert.match((expandHostTemplate('{Secrets}', host) as { reason: string }).reason, /not a known folder/);
      assert.equal(expandHostTemplate('~/../bob', host).ok, false);
      assert.equal(expandHostTemplate('data', host).ok, false);
      assert.equal(expandHostTemplate('C:\\Data', host).ok, false);
    });
  });
});
