// The import direction of src/ (the table and its reasons: test/architecture/layers.ts):
//
//   errors.ts → primitives → platform → runtime, payload
//     → stick, auth, vmm, ninep, guestregistry → hostprobe, dyntable
//     → session, audit → cli
//
// Lower layers never import higher ones ("up"), peers of one layer never
// import each other ("around"), src/ never imports build/, and no files import
// each other in a loop. Known exceptions are listed in layers.ts with a reason
// each, and an exception that no longer matches fails here too.
import assert from 'node:assert/strict';
import { cycles, readImportGraph, type ImportGraph } from './import-graph.ts';
import { directionProblems, isKnownException, KNOWN_CYCLES, KNOWN_EXCEPTIONS, LAYERS, unitOf } from './layers.ts';

describe('architecture: the import direction of src/', () => {
  let graph: ImportGraph;
  before(() => {
    graph = readImportGraph();
  });

  it('reads the imports: static, type-only and dynamic (a graph of the real tree, not an empty one)', () => {
    const hostprobe = graph.edges.filter((edge) => edge.from === 'src/hostprobe/current-host.ts').map((edge) => edge.to);
    assert.ok(hostprobe.includes('src/platform/current.ts'), `current-host.ts imports: ${hostprobe.join(', ')}`);
    assert.ok(graph.edges.some((edge) => edge.typeOnly));
    assert.ok(graph.edges.some((edge) => edge.dynamic && edge.from.startsWith('src/cli/')));
    assert.ok(graph.files.length > 100);
  });

  it('every folder of src/ has a layer in the table', () => {
    const unlisted = [...new Set(graph.files.filter((file) => file.startsWith('src/') && !unitOf(file)).map((file) => file.split('/').slice(0, 2).join('/')))];
    assert.deepEqual(unlisted, [], `add these folders to LAYERS in test/architecture/layers.ts: ${unlisted.join(', ')}`);
  });

  it('no import goes up a layer, around to a peer, or into build/', () => {
    const problems = directionProblems(graph).filter((problem) => !isKnownException(problem.edge));
    assert.deepEqual(
      problems.map((problem) => problem.text),
      [],
    );
  });

  it('every listed exception still matches an import (remove it once its reason is gone)', () => {
    const stale = KNOWN_EXCEPTIONS.filter(({ from, to }) => !directionProblems(graph).some((problem) => problem.edge.from === from && problem.edge.to === to));
    assert.deepEqual(
      stale.map(({ from, to }) => `${from} -> ${to}`),
      [],
    );
  });

  it('no files of src/ or build/ import each other in a loop', () => {
    const known = new Set(KNOWN_CYCLES.map(({ files }) => files.join(' ')));
    const found = cycles(graph.files, graph.edges);
    assert.deepEqual(
      found.filter((cycle) => !known.has(cycle.join(' '))),
      [],
    );
    const stale = KNOWN_CYCLES.filter(({ files }) => !found.some((cycle) => cycle.join(' ') === files.join(' ')));
    assert.deepEqual(
      stale.map(({ files }) => files.join(', ')),
      [],
      'a listed cycle is gone (or changed): update KNOWN_CYCLES in test/architecture/layers.ts',
    );
  });

  it('the checks catch what they are for: an import up, one around, one into build/, a loop', () => {
    const edge = (from: string, to: string) => ({ from, to, line: 1, typeOnly: false, dynamic: false });
    const made: ImportGraph = {
      files: ['src/vmm/a.ts', 'src/hostprobe/b.ts', 'src/stick/c.ts', 'src/cli/d.ts', 'build/e.ts', 'src/platform/f.ts'],
      edges: [
        edge('src/vmm/a.ts', 'src/hostprobe/b.ts'),
        edge('src/vmm/a.ts', 'src/stick/c.ts'),
        edge('src/cli/d.ts', 'build/e.ts'),
        edge('src/hostprobe/b.ts', 'src/platform/f.ts'),
        edge('build/e.ts', 'src/cli/d.ts'),
      ],
    };
    assert.deepEqual(
      directionProblems(made).map((problem) => problem.kind),
      ['up', 'around', 'into build'],
    );
    assert.deepEqual(cycles(made.files, [...made.edges, edge('src/hostprobe/b.ts', 'src/vmm/a.ts')]), [
      ['build/e.ts', 'src/cli/d.ts'],
      ['src/hostprobe/b.ts', 'src/vmm/a.ts'],
    ]);
    assert.equal(LAYERS[unitOf('src/platform/current.ts')!.layer]!.folders.includes('platform'), true);
  });
});
