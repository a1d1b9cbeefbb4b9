// "Which OS am I on" has one answer, in src/platform/ (current.ts chooses the
// record of linux.ts, windows.ts or darwin.ts). Everywhere else in src/ asks
// that record a named question; this fails on a `process.platform`, an
// `os.platform()`/`os.type()` or an import of them from node:os outside it.
import assert from 'node:assert/strict';
import ts from 'typescript';
import { parseSource, repoRoot, sourceFiles } from './import-graph.ts';

/** Each place a file reads which OS it runs on, as `file:line: text`. */
function osQuestions(file: string): string[] {
  const source = parseSource(repoRoot, file);
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

describe('architecture: one platform layer', () => {
  it('src/ asks which OS it runs on only in src/platform/', () => {
    const outside = sourceFiles(repoRoot, 'src').filter((file) => !file.startsWith('src/platform/'));
    assert.deepEqual(outside.flatMap(osQuestions), []);
  });

  it('the check sees the question where it is asked (src/platform/current.ts, host-fingerprint.ts)', () => {
    assert.equal(osQuestions('src/platform/current.ts').length, 1);
    assert.equal(osQuestions('src/platform/host-fingerprint.ts').length, 1);
  });
});
