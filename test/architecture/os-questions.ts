// Where a file asks which OS it runs on: `process.platform`, `os.platform()`,
// `os.type()`, or those imported from node:os. Only src/platform/ may
// (test/architecture/platform-layer.test.ts); bench/layout.ts counts them.
import ts from 'typescript';
import { parseSource, repoRoot } from './import-graph.ts';

/** Each place a file reads which OS it runs on, as `file:line: text`. */
export function osQuestions(file: string, root: string = repoRoot): string[] {
  const source = parseSource(root, file);
  const found: string[] = [];
  const at = (node: ts.Node): string => `${file}:${source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1}: ${node.getText(source)}`;
  const visit = (node: ts.Node): void => {
    if (ts.isPropertyAccessExpression(node) && ['platform', 'type'].includes(node.name.text)) {
      const owner = node.expression.getText(source);
      if (owner === 'process' && node.name.text === 'platform') found.push(at(node));
      if ((owner === 'os' || owner === 'node:os') && ts.isCallExpression(node.parent)) found.push(at(node));
    }
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier) && ['os', 'node:os'].includes(node.moduleSpecifier.text)) {
      const bindings = node.importClause?.namedBindings;
      if (bindings && ts.isNamedImports(bindings)) {
        for (const element of bindings.elements) if (['platform', 'type'].includes((element.propertyName ?? element.name).text)) found.push(at(element));
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}
