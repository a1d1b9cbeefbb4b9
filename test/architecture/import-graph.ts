// The import graph of the repository's own code (src/, build/, build.js), read
// with the TypeScript compiler's parser: which file imports which, by a static
// `import`/`export … from` or a dynamic `import('…')` with a literal path.
// bench/layout.ts prints it; test/architecture/import-direction.test.ts checks
// it against the layer table. Both read it here so they cannot disagree.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

export interface ImportEdge {
  /** Repository-relative, with forward slashes: `src/vmm/machine.ts`. */
  from: string;
  to: string;
  line: number;
  /** `import type` (or every name imported as a type): gone at run time, still a dependency of the design. */
  typeOnly: boolean;
  dynamic: boolean;
}

export interface ImportGraph {
  files: string[];
  edges: ImportEdge[];
}

const toPosix = (path: string): string => path.split(sep).join('/');

/** Every .ts file under `dir` (repository-relative), sorted; node_modules and dot folders skipped. */
export function sourceFiles(root: string, dir: string): string[] {
  const found: string[] = [];
  const walk = (at: string): void => {
    for (const entry of readdirSync(join(root, at), { withFileTypes: true })) {
      if (entry.name.startsWith('.') || entry.name === 'node_modules') continue;
      const path = `${at}/${entry.name}`;
      if (entry.isDirectory()) walk(path);
      else if (entry.isFile() && entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) found.push(path);
    }
  };
  walk(dir);
  return found.sort();
}

/** The files the import graph covers: the launcher (src/) and the build (build/, build.js). */
export function projectFiles(root = repoRoot): string[] {
  return [...sourceFiles(root, 'src'), ...sourceFiles(root, 'build'), 'build.js'];
}

export function parseSource(root: string, file: string): ts.SourceFile {
  const kind = file.endsWith('.js') ? ts.ScriptKind.JS : ts.ScriptKind.TS;
  return ts.createSourceFile(file, readFileSync(join(root, file), 'utf8'), ts.ScriptTarget.ES2022, true, kind);
}

function isTypeOnlyImport(node: ts.ImportDeclaration): boolean {
  const clause = node.importClause;
  if (!clause) return false; // `import './x.ts'` runs x
  if (clause.isTypeOnly) return true;
  if (clause.name) return false;
  const bindings = clause.namedBindings;
  return bindings !== undefined && ts.isNamedImports(bindings) && bindings.elements.length > 0 && bindings.elements.every((element) => element.isTypeOnly);
}

/** The relative imports of one file, resolved to repository-relative paths. */
export function importsOf(root: string, file: string): ImportEdge[] {
  const source = parseSource(root, file);
  const edges: ImportEdge[] = [];
  const add = (specifier: ts.Expression | undefined, node: ts.Node, typeOnly: boolean, dynamic: boolean): void => {
    if (!specifier || !ts.isStringLiteralLike(specifier) || !specifier.text.startsWith('.')) return;
    const to = toPosix(relative(root, resolve(root, dirname(file), specifier.text)));
    const line = source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1;
    edges.push({ from: file, to, line, typeOnly, dynamic });
  };
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node)) add(node.moduleSpecifier, node, isTypeOnlyImport(node), false);
    else if (ts.isExportDeclaration(node)) add(node.moduleSpecifier, node, node.isTypeOnly, false);
    else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) add(node.arguments[0], node, false, true);
    else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) add(node.argument.literal, node, true, false);
    ts.forEachChild(node, visit);
  };
  visit(source);
  return edges;
}

export function readImportGraph(root = repoRoot, files = projectFiles(root)): ImportGraph {
  return { files, edges: files.flatMap((file) => importsOf(root, file)) };
}

/**
 * Strongly connected components of a directed graph with more than one node
 * (Tarjan's algorithm): each is a set of nodes that import each other, directly
 * or around a loop. A node importing itself counts too.
 */
export function cycles(nodes: string[], edges: Array<{ from: string; to: string }>): string[][] {
  const next = new Map<string, string[]>(nodes.map((node) => [node, []]));
  for (const { from, to } of edges) if (next.has(from) && next.has(to)) next.get(from)!.push(to);
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const connect = (node: string): void => {
    index.set(node, counter);
    low.set(node, counter);
    counter += 1;
    stack.push(node);
    onStack.add(node);
    for (const target of next.get(node)!) {
      if (!index.has(target)) {
        connect(target);
        low.set(node, Math.min(low.get(node)!, low.get(target)!));
      } else if (onStack.has(target)) {
        low.set(node, Math.min(low.get(node)!, index.get(target)!));
      }
    }
    if (low.get(node) !== index.get(node)) return;
    const component: string[] = [];
    let member: string;
    do {
      member = stack.pop()!;
      onStack.delete(member);
      component.push(member);
    } while (member !== node);
    if (component.length > 1 || next.get(node)!.includes(node)) found.push(component.sort());
  };
  for (const node of nodes) if (!index.has(node)) connect(node);
  return found.sort((a, b) => b.length - a.length || a[0]!.localeCompare(b[0]!));
}

/**
 * The folder a file belongs to for the folder-level picture: `src/<folder>`
 * for the launcher (`src` for files directly in src/), `build` for the build.
 */
export function topFolderOf(file: string): string {
  if (file === 'build.js' || file.startsWith('build/')) return 'build';
  const parts = file.split('/');
  return parts[0] === 'src' && parts.length > 2 ? `src/${parts[1]}` : parts[0]!;
}

/** The graph between top folders: one edge per (from folder, to folder) pair, with the file imports behind it. */
export function folderEdges(graph: ImportGraph): Map<string, ImportEdge[]> {
  const byPair = new Map<string, ImportEdge[]>();
  for (const edge of graph.edges) {
    const from = topFolderOf(edge.from);
    const to = topFolderOf(edge.to);
    if (from === to) continue;
    const key = `${from} -> ${to}`;
    byPair.set(key, [...(byPair.get(key) ?? []), edge]);
  }
  return byPair;
}
