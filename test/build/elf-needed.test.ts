import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { ElfFormatError, isElf, readElfDynamic, readElfSection } from '../../build/payload/elf-needed.ts';

function readelf(args: string[], file: string): string | undefined {
  const result = spawnSync('readelf', [...args, file], { encoding: 'utf8' });
  return result.status === 0 ? result.stdout : undefined;
}

const candidates = ['/bin/ls', '/usr/bin/qemu-system-x86_64', '/usr/bin/gzip'].filter((f) => existsSync(f));

describe('ELF reader', () => {
  for (const file of candidates) {
    it(`reads the same DT_NEEDED, SONAME and interpreter as readelf for ${file}`, function () {
      const dynamic = readelf(['-d', '-W'], file);
      const program = readelf(['-l', '-W'], file);
      assert.ok(dynamic && program, 'readelf (binutils) is needed to check against; .ci/run installs it');
      const expected = [...dynamic.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]);
      const expectedInterp = /Requesting program interpreter: ([^\]]+)\]/.exec(program)?.[1];
      const info = readElfDynamic(readFileSync(file));
      assert.ok(expected.length > 0, 'the test binary is dynamically linked');
      assert.deepEqual(info.needed, expected);
      assert.equal(info.interpreter, expectedInterp);
    });
  }

  it('reads the SONAME of a shared library', function () {
    const libc = ['/lib/x86_64-linux-gnu/libc.so.6', '/usr/lib/x86_64-linux-gnu/libc.so.6'].find((f) => existsSync(f));
    assert.ok(libc, 'no libc.so.6 found on this host');
    const info = readElfDynamic(readFileSync(libc));
    assert.equal(info.soname, 'libc.so.6');
    assert.equal(info.interpreter, '/lib64/ld-linux-x86-64.so.2');
  });

  it('reads a named section (.interp holds the interpreter path)', function () {
    const file = candidates[0];
    assert.ok(file, 'no dynamically linked binary found to read');
    const bytes = readFileSync(file);
    const section = readElfSection(bytes, '.interp');
    assert.ok(section);
    assert.equal(section.toString('utf8').replace(/\0+$/, ''), readElfDynamic(bytes).interpreter);
    assert.equal(readElfSection(bytes, '.no-such-section'), undefined);
  });

  it('rejects what is not ELF, and truncated files, with ElfFormatError', function () {
    assert.equal(isElf(Buffer.from('#!/bin/sh\n')), false);
    assert.throws(() => readElfDynamic(Buffer.from('#!/bin/sh\n'.repeat(10))), ElfFormatError);
    const file = candidates[0];
    assert.ok(file, 'no dynamically linked binary found to read');
    const bytes = readFileSync(file);
    assert.throws(() => readElfDynamic(bytes.subarray(0, 200)), ElfFormatError);
  });
});
