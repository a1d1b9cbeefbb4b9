// Every file of the repository the docs name in code spans (`src/…`, `test/…`,
// `bench/…`, `build/…`, `payload/…`) exists, so a file moved or renamed without
// its docs fails here, naming the page and the path. Folders (a trailing /) and
// patterns (<guest>, *, {a,b}) are left alone: design.md names folders still
// planned.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const pages = [
  join(root, 'README.md'),
  ...readdirSync(join(root, 'docs'), { recursive: true, encoding: 'utf8' })
    .filter((name) => name.endsWith('.md'))
    .map((name) => join(root, 'docs', name)),
];

/** Repository paths in a page's code spans, as written. */
function namedPaths(markdown: string): string[] {
  const paths: string[] = [];
  for (const span of markdown.matchAll(/`([^`\n]+)`/g)) {
    for (const word of span[1]!.split(/[\s,;()]+/)) {
      const path = /^(?:src|test|bench|build|payload)\/[\w./-]*[\w]$/.exec(word.replace(/[.:]+$/, ''));
      if (path) paths.push(path[0]);
    }
  }
  return paths;
}

/** A benchmark is named without its extension (`bench/ninep`). */
function exists(path: string): boolean {
  return existsSync(join(root, path)) || (path.startsWith('bench/') && existsSync(join(root, `${path}.ts`)));
}

describe('repository paths named in README.md and docs/', () => {
  it('finds them', () => {
    assert.ok(pages.flatMap((page) => namedPaths(readFileSync(page, 'utf8'))).length > 100);
  });

  it('name files that exist', () => {
    const missing = pages.flatMap((page) =>
      [...new Set(namedPaths(readFileSync(page, 'utf8')))].filter((path) => !exists(path)).map((path) => `${relative(root, page)}: ${path}`),
    );
    assert.deepEqual(missing, []);
  });
});
