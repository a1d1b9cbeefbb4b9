// The .reg text formats: both headers, every value type, escapes, line
// continuations, deletions, and malformed files naming their line.
import assert from 'node:assert/strict';
import { RegFileError } from '../../src/errors.ts';
import { decodeRegFile, encodeRegFile, parseReg, type RegFormat, writeReg } from '../../src/guestregistry/reg-format.ts';
import { regValueEquals } from '../../src/guestregistry/value.ts';
import { EVERY_TYPE } from './fixtures.ts';

function entriesOf(values: typeof EVERY_TYPE) {
  const keys = new Map<string, Array<{ name: string; value: (typeof EVERY_TYPE)[number]['value'] }>>();
  for (const v of values) keys.set(v.key, [...(keys.get(v.key) ?? []), { name: v.name, value: v.value }]);
  return [...keys].map(([key, vals]) => ({ key, values: vals }));
}

function lineError(line: number, pattern: RegExp) {
  return (error: unknown) => error instanceof RegFileError && error.line === line && error.exitCode === 12 && pattern.test(error.message);
}

describe('guest registry .reg format', () => {
  for (const format of ['v5', 'regedit4'] as RegFormat[]) {
    it(`round-trips every value type losslessly (${format}, through the file bytes)`, () => {
      const text = writeReg(entriesOf(EVERY_TYPE), format);
      const bytes = encodeRegFile(text, format);
      if (format === 'v5') assert.deepEqual([...bytes.subarray(0, 2)], [0xff, 0xfe]);
      const parsed = parseReg(decodeRegFile(bytes));
      assert.equal(parsed.format, format);
      const sets = parsed.operations.filter((op) => op.op === 'set');
      assert.equal(sets.length, EVERY_TYPE.length);
      for (const [i, expected] of EVERY_TYPE.entries()) {
        const op = sets[i]!;
        assert.equal(op.key, expected.key);
        assert.equal(op.name, expected.name);
        assert.ok(regValueEquals(op.value, expected.value), `${expected.name}: ${JSON.stringify(op.value, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v))}`);
      }
      // Writing what was read gives the same text: nothing drifts.
      assert.equal(writeReg(entriesOf(sets.map((op) => ({ key: op.key, name: op.name, value: op.value }))), format), text);
    });
  }

  it('writes what regedit writes: header, [HKEY_POCKETVM\\KEY], @=, dword:, hex(b):, wrapped hex with \\ continuations, CRLF', () => {
    const text = writeReg(entriesOf(EVERY_TYPE), 'v5');
    assert.ok(text.startsWith('Windows Registry Editor Version 5.00\r\n\r\n[HKEY_POCKETVM\\Guest]\r\n'));
    assert.match(text, /^@="the default value"\r$/m);
    assert.match(text, /^"int32 min"=dword:80000000\r$/m);
    assert.match(text, /^"int64 max"=hex\(b\):ff,ff,ff,ff,ff,ff,ff,7f\r$/m);
    assert.match(text, /^"true"=hex\(100\):01\r$/m);
    assert.match(text, /^"quoted"="say \\"hi\\" to C:\\\\Users\\\\ä€😀"\r$/m);
    assert.match(text, /^"bytes"=hex:00,25,4a,.*,\\\r\n  [0-9a-f]{2},/m);
    for (const line of text.split('\r\n')) assert.ok(line.length <= 80, line);
    assert.match(writeReg(entriesOf(EVERY_TYPE), 'regedit4'), /^"expand"=hex\(2\):25,48,4f,4d,45,25,5c,62,69,6e,3b,c3,bc,00\r$/m);
  });

  it('reads a file as regedit writes it: UTF-16LE with BOM, comments, blank lines, [-KEY], "name"=-, hex(2) and hex(7) continuations', () => {
    const text = [
      'Windows Registry Editor Version 5.00',
      '',
      '; a comment',
      '[-HKEY_POCKETVM\\Old]',
      '[HKEY_POCKETVM\\Guest]',
      '"Gone"=-',
      '@="default"',
      '"Path"=hex(2):25,00,50,00,41,00,54,00,48,00,25,00,\\',
      '  00,00',
      '"List"=hex(7):61,00,00,00,\\',
      '    62,00,00,00,00,00',
      '"Mem" = dword:00000100',
      '',
    ].join('\r\n');
    const parsed = parseReg(decodeRegFile(encodeRegFile(text, 'v5')));
    assert.deepEqual(
      parsed.operations.map((op) => [op.op, op.line]),
      [
        ['delete-key', 4],
        ['key', 5],
        ['delete-value', 6],
        ['set', 7],
        ['set', 8],
        ['set', 10],
        ['set', 12],
      ],
    );
    const values = parsed.operations.flatMap((op) => (op.op === 'set' ? [op.value] : []));
    assert.deepEqual(values, [
      { type: 'string', data: 'default' },
      { type: 'expand-string', data: '%PATH%' },
      { type: 'multi-string', data: ['a', 'b'] },
      { type: 'int32', data: 256 },
    ]);
  });

  it('reads REGEDIT4 in Windows-1252 when it is not UTF-8, and hex(1)/hex(4) values', () => {
    const bytes = Buffer.concat([
      Buffer.from('REGEDIT4\n\n[HKEY_POCKETVM\\A]\n"s"="caf'),
      Buffer.from([0xe9]),
      Buffer.from('"\n"h"=hex(1):61,62,00\n"d"=hex(4):ff,ff,ff,ff\n'),
    ]);
    const sets = parseReg(decodeRegFile(bytes)).operations.flatMap((op) => (op.op === 'set' ? [op.value] : []));
    assert.deepEqual(sets, [
      { type: 'string', data: 'café' },
      { type: 'string', data: 'ab' },
      { type: 'int32', data: -1 },
    ]);
  });

  const malformed: Array<[string, string, number, RegExp]> = [
    ['no header', '[HKEY_POCKETVM\\A]\n"a"="b"', 1, /does not start with/],
    ['key outside the root', 'REGEDIT4\n\n[HKEY_LOCAL_MACHINE\\Software]', 3, /not under HKEY_POCKETVM/],
    ['unclosed key', 'REGEDIT4\n[HKEY_POCKETVM\\A', 2, /no closing \]/],
    ['value before a key', 'REGEDIT4\n"a"="b"', 2, /before any \[KEY\]/],
    ['value at the root', 'REGEDIT4\n[HKEY_POCKETVM]\n"a"="b"', 3, /root/],
    ['unclosed string', 'REGEDIT4\n[HKEY_POCKETVM\\A]\n\n"a"="b', 4, /no closing "/],
    ['unknown escape', 'REGEDIT4\n[HKEY_POCKETVM\\A]\n"a"="C:\\Windows"', 3, /unknown escape/],
    ['bad dword', 'REGEDIT4\n[HKEY_POCKETVM\\A]\n"a"=dword:123456789', 3, /not a dword/],
    ['bad hex byte', 'REGEDIT4\n[HKEY_POCKETVM\\A]\n"a"=hex:01,zz', 3, /not a hex byte/],
    ['half a hex byte', 'REGEDIT4\n[HKEY_POCKETVM\\A]\n"a"=hex:01,1g', 3, /"1g" is not a hex byte/],
    ['unsupported type', 'REGEDIT4\n[HKEY_POCKETVM\\A]\n"a"=hex(5):01,00,00,00', 3, /not supported/],
    ['qword of 4 bytes', 'REGEDIT4\n[HKEY_POCKETVM\\A]\n"a"=hex(b):01,00,00,00', 3, /needs 8 bytes/],
    ['bool of 2', 'REGEDIT4\n[HKEY_POCKETVM\\A]\n"a"=hex(100):02', 3, /00 or 01/],
    ['odd UTF-16', 'Windows Registry Editor Version 5.00\n[HKEY_POCKETVM\\A]\n"a"=hex(2):41', 3, /odd number/],
    ['junk line', 'REGEDIT4\n[HKEY_POCKETVM\\A]\nhello', 3, /cannot read/],
    ['missing =', 'REGEDIT4\n[HKEY_POCKETVM\\A]\n"a" "b"', 3, /expected =/],
    ['continuation past the end', 'REGEDIT4\n[HKEY_POCKETVM\\A]\n"a"=hex:01,\\', 3, /past the end/],
    ['empty key component', 'REGEDIT4\n[HKEY_POCKETVM\\A\\\\B]', 2, /empty component/],
    ['oversized value', `REGEDIT4\n[HKEY_POCKETVM\\A]\n"a"="${'x'.repeat(600_000)}"`, 3, /limit is 1048576/],
    ['deleting the root', 'REGEDIT4\n[-HKEY_POCKETVM]', 2, /cannot be deleted/],
    // An empty file is refused on line 1 saying it is empty (not "line 2: does not start with").
    ['an empty file', '', 1, /^x\.reg line 1: the file is empty \(a \.reg file starts with/],
    ['only blank lines', '\r\n\r\n', 1, /the file is empty/],
  ];
  for (const [what, text, line, pattern] of malformed) {
    it(`names the line of a malformed file: ${what}`, () => {
      assert.throws(() => parseReg(text, { source: 'x.reg' }), lineError(line, pattern));
    });
  }
});
