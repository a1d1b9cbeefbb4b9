// Real clients for a `launcher files share`: curl for WebDAV (Digest, as the
// share asks) and smbclient for SMB, both against the printed URLs.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { execa } from 'execa';

export interface ShareLogin {
  name: string;
  user: string;
  password: string;
  webdav: { url: string };
  smb: { port: number };
}

const davUrl = (share: ShareLogin, path: string) => share.webdav.url + path.split('/').map(encodeURIComponent).join('/');

/** GET over WebDAV: the bytes, or the HTTP status as an error. */
export async function davGet(share: ShareLogin, path: string, password = share.password): Promise<{ status: number; body: Buffer }> {
  const dir = mkdtempSync(join(tmpdir(), 'pocketvm-dav-'));
  try {
    const out = join(dir, 'body');
    const result = await execa('curl', ['-sS', '--digest', '-u', `${share.user}:${password}`, '-o', out, '-w', '%{http_code}', davUrl(share, path)], {
      reject: false,
    });
    const status = Number(result.stdout);
    return { status, body: status === 200 ? readFileSync(out) : Buffer.alloc(0) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** PUT (or MKCOL for a folder) over WebDAV: the HTTP status. */
export async function davPut(share: ShareLogin, path: string, local: string | null): Promise<number> {
  const args = local === null ? ['-X', 'MKCOL'] : ['-T', local];
  const result = await execa(
    'curl',
    ['-sS', '--digest', '-u', `${share.user}:${share.password}`, ...args, '-o', '/dev/null', '-w', '%{http_code}', davUrl(share, path)],
    {
      reject: false,
    },
  );
  return Number(result.stdout);
}

/** smbclient against the share's port: one command line (-c). */
export function smb(share: ShareLogin, commands: string, password = share.password) {
  return execa('smbclient', ['-t', '300', '-p', String(share.smb.port), `//127.0.0.1/${share.name}`, '-U', `${share.user}%${password}`, '-c', commands], {
    reject: false,
    env: { LANG: 'C.UTF-8' },
  });
}

/** A file's bytes through SMB. */
export async function smbGet(share: ShareLogin, path: string): Promise<Buffer> {
  const dir = mkdtempSync(join(tmpdir(), 'pocketvm-smb-'));
  try {
    const out = join(dir, 'body');
    const result = await smb(share, `cd "${posix.dirname(path)}"; get "${posix.basename(path)}" "${out}"`);
    if (result.exitCode !== 0) throw new Error(`smbclient get ${path}: ${result.stdout} ${result.stderr}`);
    return readFileSync(out);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
