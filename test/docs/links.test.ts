// Every relative link in README.md and docs/ points at a file that exists,
// and a link to a heading (`file.md#heading`, `#heading`) at a heading that
// exists, named as GitHub names its anchors. Moving or renaming a page or a
// heading without its links fails here.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

function markdownFiles(): string[] {
  const files = [join(root, 'README.md')];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.isDirectory()) walk(join(dir, entry.name));
      else if (entry.name.endsWith('.md')) files.push(join(dir, entry.name));
    }
  };
  walk(join(root, 'docs'));
  return files;
}

/** The text outside fenced code blocks and inline code spans, line by line. */
function proseLines(markdown: string): Array<{ line: number; text: string }> {
  const lines: Array<{ line: number; text: string }> = [];
  let fenced = false;
  markdown.split('\n').forEach((text, index) => {
    if (/^\s*(```|~~~)/.test(text)) {
      fenced = !fenced;
      return;
    }
    if (!fenced) lines.push({ line: index + 1, text: text.replace(/(`+)[^`]*?\1/g, '') });
  });
  return lines;
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens, -1, -2 … for repeats. */
function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const result = new Set<string>();
  let fenced = false;
  for (const line of markdown.split('\n')) {
    if (/^\s*(```|~~~)/.test(line)) fenced = !fenced;
    const heading = fenced ? null : /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!heading) continue;
    const text = heading[1]!.replace(/\[([^\]]*)\]\([^)]*\)/g, '$1');
    const base = text
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-');
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    result.add(count === 0 ? base : `${base}-${count}`);
  }
  return result;
}

interface Link {
  file: string;
  line: number;
  target: string;
}

function relativeLinks(file: string): Link[] {
  const links: Link[] = [];
  for (const { line, text } of proseLines(readFileSync(file, 'utf8'))) {
    for (const match of text.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) {
      const target = match[1]!;
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto: …
      links.push({ file, line, target });
    }
  }
  return links;
}

/** What is wrong with a link, or undefined when it leads somewhere. */
function problem(link: Link): string | undefined {
  const [path = '', fragment] = link.target.split('#', 2);
  const target = path === '' ? link.file : resolve(dirname(link.file), decodeURIComponent(path));
  if (!existsSync(target)) return `${relative(root, target)} does not exist`;
  if (fragment === undefined || fragment === '') return undefined;
  if (!target.endsWith('.md') || statSync(target).isDirectory()) return undefined;
  if (!anchors(readFileSync(target, 'utf8')).has(decodeURIComponent(fragment))) return `${relative(root, target)} has no heading #${fragment}`;
  return undefined;
}

describe('links in README.md and docs/', () => {
  it('finds the pages and their links', () => {
    const files = markdownFiles();
    assert.ok(files.length > 1, 'docs/ holds pages');
    assert.ok(files.flatMap(relativeLinks).length > 10, 'README.md and docs/ link to each other');
  });

  it('every relative link points at a file and heading that exist', () => {
    const broken = markdownFiles()
      .flatMap(relativeLinks)
      .flatMap((link) => {
        const why = problem(link);
        return why ? [`${relative(root, link.file)}:${link.line}: (${link.target}) ${why}`] : [];
      });
    assert.deepEqual(broken, []);
  });

  it('names anchors as GitHub does', () => {
    const names = anchors('# Usage\n## `launcher reg`\n## Sizing: never starve the host\n## Host\\... session facts\n```\n# not a heading\n```\n## Usage\n');
    assert.deepEqual([...names], ['usage', 'launcher-reg', 'sizing-never-starve-the-host', 'host-session-facts', 'usage-1']);
  });
});
