// Code that cites the docs (`docs/registry.md`, `docs/security.md, "Rollback"`)
// cites a page that exists and, when it names one, a heading on that page, so a
// comment never sends a reader to a section that moved or was renamed.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const citing = ['src', 'test', 'build', 'bench', 'payload/rootfs', 'payload/default', 'payload/kmod', 'payload/helpers', '.ci'];
const textFile = /\.(ts|js|c|h|sh|reg|json|md)$|^[^.]+$/;

function files(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return files(path);
    return textFile.test(entry.name) ? [path] : [];
  });
}

/** A page's headings as text, code spans unwrapped. */
function headings(page: string): Set<string> {
  const found = new Set<string>();
  let fenced = false;
  for (const line of readFileSync(page, 'utf8').split('\n')) {
    if (/^\s*(```|~~~)/.test(line)) fenced = !fenced;
    const heading = fenced ? null : /^#{1,6}\s+(.*?)\s*$/.exec(line);
    if (heading) found.add(heading[1]!.replace(/`/g, ''));
  }
  return found;
}

interface Citation {
  file: string;
  page: string;
  heading: string | undefined;
}

function citations(file: string): Citation[] {
  // A citation may run over a comment's line break: join continued lines first.
  const text = readFileSync(file, 'utf8').replace(/\s*\n\s*(?:\/\/|#|;|\*)?\s*/g, ' ');
  return [...text.matchAll(/\bdocs\/([\w-]+\.md)(?:,\s*"([^"]+)")?/g)].map((match) => ({ file, page: match[1]!, heading: match[2]?.replace(/`/g, '') }));
}

describe('citations of docs/ in the code', () => {
  const all = citing.flatMap((dir) => files(join(root, dir))).flatMap(citations);

  it('finds the citations', () => {
    assert.ok(all.length > 10, `found ${all.length}`);
  });

  it('cite pages and headings that exist', () => {
    const broken = all.flatMap(({ file, page, heading }) => {
      const path = join(root, 'docs', page);
      if (!existsSync(path)) return [`${relative(root, file)}: docs/${page} does not exist`];
      if (heading !== undefined && !headings(path).has(heading)) return [`${relative(root, file)}: docs/${page} has no heading "${heading}"`];
      return [];
    });
    assert.deepEqual(broken, []);
  });

  it('no longer cite README sections or DESIGN.md that moved to docs/', () => {
    const stale = citing
      .flatMap((dir) => files(join(root, dir)))
      .filter((file) => !file.startsWith(join(root, 'test', 'docs')))
      .filter((file) => /\bDESIGN\.md\b|README,? "(?!Getting QEMU")/.test(readFileSync(file, 'utf8')))
      .map((file) => relative(root, file));
    assert.deepEqual(stale, []);
  });
});
