// The host-side rules of `files share` (src/appliance/source-share.ts): the
// password, the ports inside the appliance, the addresses and hints printed.
import assert from 'node:assert/strict';
import { guestPorts, newPassword, openHints, type ShareInfo, shareUrls } from '../../src/appliance/source-share.ts';

describe('files share: host-side rules', () => {
  it('makes a new 24-character URL-safe password every time', () => {
    const passwords = new Set(Array.from({ length: 50 }, () => newPassword()));
    assert.equal(passwords.size, 50);
    for (const password of passwords) assert.match(password, /^[A-Za-z0-9_-]{24}$/);
  });

  it('gives each SCSI target its own pair of ports inside the appliance', () => {
    const all = Array.from({ length: 256 }, (_, target) => guestPorts(target)).flatMap((p) => [p.dav, p.smb]);
    assert.equal(new Set(all).size, 512);
    for (const port of all) assert.ok(port > 1024 && port < 65536);
  });

  it('names addresses on 127.0.0.1 only, and tells Windows to use WebDAV', () => {
    const urls = shareUrls('disk', 41000, 42000);
    assert.equal(urls.webdav.url, 'http://127.0.0.1:41000/');
    assert.equal(urls.smb.url, 'smb://127.0.0.1:42000/disk');
    const info: ShareInfo = { readOnly: true, user: 'pocketvm', ...urls, owner: { uid: 1000, gid: 1000 }, since: '' };
    assert.match(openHints(info, 'explorer').join('\n'), /\\\\127\.0\.0\.1@41000\\DavWWWRoot/);
    assert.match(openHints(info, 'finder').join('\n'), /smb:\/\/127\.0\.0\.1:42000\/disk/);
    assert.match(openHints(info, 'gnome-files').join('\n'), /dav:\/\/127\.0\.0\.1:41000\//);
  });
});
