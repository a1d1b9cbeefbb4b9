// bench/layout: the shape of src/ — how many files and lines, the largest files,
// the longest functions, and the import cycles between files and between the
// top folders (and between src/ and the build) — so a reorganisation can print
// its before and after. `--json` prints the same as one JSON object.
//
//   node build.js bench layout [--json] [--top N]
//
// A structure report, not a timing: there is no baseline to run, and nothing
// here fails; the rules live in test/architecture/import-direction.test.ts.
import ts from 'typescript';
import { cycles, folderEdges, parseSource, readImportGraph, repoRoot, sourceFiles, topFolderOf } from '../test/architecture/import-graph.ts';
import { directionProblems } from '../test/architecture/layers.ts';
import { osQuestions } from '../test/architecture/os-questions.ts';
import { benchOptions, numberOption } from './bench-options.ts';

const { json } = benchOptions(1);
const top = numberOption('--top', 15);

interface FileSize {
  file: string;
  lines: number;
}

interface FunctionSize {
  file: string;
  name: string;
  line: number;
  lines: number;
}

const lineCount = (text: string): number => text.split('\n').length - (text.endsWith('\n') ? 1 : 0);

/** What a function is called where it is declared: `Class.method`, `name`, or `<anonymous>` with its line. */
function functionName(node: ts.FunctionLikeDeclaration, source: ts.SourceFile): string | undefined {
  const owner = (n: ts.Node): string => (ts.isClassLike(n.parent) && n.parent.name ? `${n.parent.name.text}.` : '');
  if (ts.isConstructorDeclaration(node)) return `${owner(node)}constructor`;
  if (node.name) return `${owner(node)}${node.name.getText(source)}`;
  const parent = node.parent;
  if (ts.isVariableDeclaration(parent) || ts.isPropertyAssignment(parent) || ts.isPropertyDeclaration(parent)) return parent.name.getText(source);
  return undefined;
}

function functionsOf(file: string): FunctionSize[] {
  const source = parseSource(repoRoot, file);
  const found: FunctionSize[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isFunctionLike(node) && 'body' in node && node.body) {
      const declaration = node as ts.FunctionLikeDeclaration;
      const start = source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1;
      const end = source.getLineAndCharacterOfPosition(node.getEnd()).line + 1;
      const name = functionName(declaration, source) ?? `<anonymous>@${start}`;
      found.push({ file, name, line: start, lines: end - start + 1 });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

const srcFiles = sourceFiles(repoRoot, 'src');
const sizes: FileSize[] = srcFiles.map((file) => ({ file, lines: lineCount(parseSource(repoRoot, file).text) }));
const functions = srcFiles.flatMap(functionsOf);
const graph = readImportGraph();
const srcGraph = { files: srcFiles, edges: graph.edges.filter((edge) => edge.from.startsWith('src/') && edge.to.startsWith('src/')) };
const runtimeEdges = srcGraph.edges.filter((edge) => !edge.typeOnly);
const fileCycles = cycles(srcGraph.files, srcGraph.edges);
const runtimeFileCycles = cycles(srcGraph.files, runtimeEdges);
const folders = [...new Set(graph.files.map(topFolderOf))].sort();
const pairs = folderEdges(graph);
const folderCycles = cycles(
  folders,
  [...pairs.keys()].map((key) => {
    const [from, to] = key.split(' -> ') as [string, string];
    return { from, to };
  }),
);
/** For each folder cycle, the folder-to-folder imports inside it and how many file imports each stands for. */
const folderCycleEdges = folderCycles.map((members) =>
  [...pairs.entries()]
    .filter(([key]) => {
      const [from, to] = key.split(' -> ') as [string, string];
      return members.includes(from) && members.includes(to);
    })
    .map(([key, edges]) => ({ edge: key, imports: edges.length, example: `${edges[0]!.from}:${edges[0]!.line} -> ${edges[0]!.to}` })),
);
const crossing = (from: (file: string) => boolean, to: (file: string) => boolean) =>
  graph.edges.filter((edge) => from(edge.from) && to(edge.to)).map((edge) => `${edge.from}:${edge.line} -> ${edge.to}${edge.typeOnly ? ' (type)' : ''}`);
const isBuild = (file: string): boolean => topFolderOf(file) === 'build';
const isSrc = (file: string): boolean => file.startsWith('src/');

const against = directionProblems(graph);
const asking = srcFiles.filter((file) => !file.startsWith('src/platform/') && osQuestions(file).length > 0);

const report = {
  files: sizes.length,
  lines: sizes.reduce((sum, { lines }) => sum + lines, 0),
  filesOver300Lines: sizes.filter(({ lines }) => lines > 300).length,
  largestFiles: [...sizes].sort((a, b) => b.lines - a.lines || a.file.localeCompare(b.file)).slice(0, top),
  functions: functions.length,
  functionsOver50Lines: functions.filter(({ lines }) => lines > 50).length,
  longestFunctions: [...functions].sort((a, b) => b.lines - a.lines || a.file.localeCompare(b.file)).slice(0, top),
  importEdges: srcGraph.edges.length,
  fileCycles,
  runtimeFileCycles,
  folderCycles: folderCycles.map((members, at) => ({ folders: members, edges: folderCycleEdges[at]! })),
  srcImportsBuild: crossing(isSrc, isBuild),
  /** Imports against the layer table of test/architecture/layers.ts (its known exceptions included). */
  againstDirection: against.map(({ kind, text }) => ({ kind, text })),
  /** Files outside src/platform/ that ask which OS they run on. */
  filesAskingTheOs: asking,
  buildImportsSrc: crossing(isBuild, isSrc),
};

if (json) {
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
} else {
  const out: string[] = [];
  out.push(
    `src/: ${report.files} files, ${report.lines} lines (${report.filesOver300Lines} files over 300 lines); ${report.functions} functions (${report.functionsOver50Lines} over 50 lines); ${report.importEdges} imports between its files`,
  );
  out.push('', `largest files (top ${top}):`);
  for (const { file, lines } of report.largestFiles) out.push(`  ${String(lines).padStart(5)}  ${file}`);
  out.push('', `longest functions (top ${top}):`);
  for (const { file, name, line, lines } of report.longestFunctions) out.push(`  ${String(lines).padStart(5)}  ${name}  (${file}:${line})`);
  out.push('', `import cycles between files: ${fileCycles.length}`);
  for (const cycle of fileCycles) out.push(`  ${cycle.length} files: ${cycle.join(', ')}`);
  out.push(`the same leaving out type-only imports (cycles at run time): ${runtimeFileCycles.length}`);
  for (const cycle of runtimeFileCycles) out.push(`  ${cycle.length} files: ${cycle.join(', ')}`);
  out.push('', `import cycles between folders: ${folderCycles.length}`);
  for (const { folders: members, edges } of report.folderCycles) {
    out.push(`  ${members.join(', ')}`);
    for (const { edge, imports, example } of edges) out.push(`    ${edge}: ${imports} import${imports === 1 ? '' : 's'}, e.g. ${example}`);
  }
  out.push('', `src/ imports the build: ${report.srcImportsBuild.length}`);
  for (const line of report.srcImportsBuild) out.push(`  ${line}`);
  out.push(`the build imports src/: ${report.buildImportsSrc.length}`);
  for (const line of report.buildImportsSrc) out.push(`  ${line}`);
  const kinds = ['up', 'around', 'into build', 'unlisted folder']
    .map((kind) => `${kind} ${against.filter((problem) => problem.kind === kind).length}`)
    .join(', ');
  out.push('', `imports against the direction of test/architecture/layers.ts: ${against.length} (${kinds})`);
  for (const { text } of against) out.push(`  ${text}`);
  out.push('', `files outside src/platform/ that ask which OS they run on: ${asking.length}`);
  for (const file of asking)
    out.push(
      `  ${file}: ${osQuestions(file)
        .map((line) => line.split(': ').slice(1).join(': '))
        .join(', ')}`,
    );
  process.stdout.write(`${out.join('\n')}\n`);
}
