// The exit-code table a person reads (docs/exit-codes.md) against the codes
// the launcher exits with (ExitCode in src/errors.ts): a code or a name added,
// removed or changed in one place and not the other fails here.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { ExitCode } from '../../src/errors.ts';

const tablePath = new URL('../../docs/exit-codes.md', import.meta.url);

/** The rows `| 12 | `registry` | meaning |` of the table, in order. */
function tableRows(markdown: string): Array<{ code: number; name: string; meaning: string }> {
  const rows: Array<{ code: number; name: string; meaning: string }> = [];
  for (const line of markdown.split('\n')) {
    const row = /^\|\s*(\d+)\s*\|\s*`([A-Za-z]+)`\s*\|(.*)\|\s*$/.exec(line);
    if (row) rows.push({ code: Number(row[1]), name: row[2]!, meaning: row[3]!.trim() });
  }
  return rows;
}

describe('docs/exit-codes.md', () => {
  it('lists exactly the codes and names of ExitCode in src/errors.ts', async () => {
    const rows = tableRows(await readFile(tablePath, 'utf8'));
    const documented = rows.map(({ code, name }) => `${code} ${name}`);
    const declared = Object.entries(ExitCode).map(([name, code]) => `${code} ${name}`);
    assert.deepEqual(documented, declared, 'docs/exit-codes.md and ExitCode in src/errors.ts must list the same codes with the same names, in the same order');
  });

  it('says what each code means', async () => {
    for (const row of tableRows(await readFile(tablePath, 'utf8')))
      assert.ok(row.meaning.length > 0, `exit ${row.code} (${row.name}) has no meaning in docs/exit-codes.md`);
  });
});
