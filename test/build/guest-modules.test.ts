// The module the payload compiles itself (payload/kmod/9pnet_pocketvm), read
// back out of the built initramfs with the system's cpio: it is there, it was
// built for exactly the kernel the payload ships, it loads after 9pnet, and
// the headers it was built against are locked at the kernel's version.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { readElfSection } from '../../build/payload/elf-needed.ts';
import { parseModinfo } from '../../build/payload/kernel-modules.ts';
import { readLock } from '../../build/payload/lockfile.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));

function member(archive: Buffer, path: string): Buffer {
  const result = spawnSync('cpio', ['-i', '--quiet', '--to-stdout', path], { input: archive, maxBuffer: 64 * 1024 * 1024 });
  assert.equal(result.status, 0, `cpio: ${String(result.stderr)}`);
  return result.stdout;
}

describe('guest modules compiled by the payload build', function () {
  let archive: Buffer;
  let kernelVersion: string;

  before(() => {
    archive = gunzipSync(readFileSync(`${root}/payload/default/initrd.img`));
    kernelVersion = JSON.parse(member(archive, 'etc/pocketvm/payload.json').toString()).kernelVersion;
  });

  it('ships 9pnet_pocketvm built for the payload kernel, depending on 9pnet', () => {
    const ko = member(archive, `lib/modules/${kernelVersion}/extra/9pnet_pocketvm.ko`);
    assert.ok(ko.length > 0, 'the module is in the initramfs');
    const info = parseModinfo(readElfSection(ko, '.modinfo') ?? Buffer.alloc(0));
    assert.match(info.get('vermagic')?.[0] ?? '', new RegExp(`^${kernelVersion.replace(/\./g, '\\.')} `));
    assert.deepEqual(info.get('depends'), ['9pnet']);
    assert.ok(readElfSection(ko, '.debug_info') === undefined, 'debug info is stripped');
  });

  it('loads it with the 9p group, after 9pnet', () => {
    const names = member(archive, 'etc/pocketvm/modules/9p')
      .toString()
      .trim()
      .split('\n')
      .map((l) => l.split(' ')[0]);
    assert.ok(names.includes('9pnet_pocketvm'));
    assert.ok(names.indexOf('9pnet') < names.indexOf('9pnet_pocketvm'));
    assert.match(member(archive, `lib/modules/${kernelVersion}/modules.dep`).toString(), /^extra\/9pnet_pocketvm\.ko: kernel\/net\/9p\/9pnet\.ko$/m);
  });

  it('locks the headers at the kernel package version', async () => {
    const lock = await readLock(`${root}/payload/payload.lock.json`);
    const kernel = lock!.packages.find((p) => p.role === 'kernel')!;
    const headers = lock!.packages.filter((p) => p.role === 'headers');
    const arch = headers.find((p) => p.name === kernel.name.replace('linux-image-', 'linux-headers-'));
    assert.equal(arch?.version, kernel.version);
    assert.ok(headers.some((p) => p.name.endsWith('-common') && p.version === kernel.version));
    assert.ok(headers.some((p) => p.name.startsWith('linux-kbuild-')));
  });
});
