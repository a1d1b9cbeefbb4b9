// The msize is one constant in TypeScript (src/ninep/msize.ts); the guest's
// kernel module and its mount script cannot import it, so this checks that
// they repeat the same number: a guest mounting with a larger msize than the
// launcher serves would have its large reads refused.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { NAMESPACE_MSIZE } from '../../src/ninep/msize.ts';
import { MAX_SEGMENTS } from '../../src/ninep/ram-placement.ts';

const root = new URL('../../', import.meta.url);
const read = (path: string) => readFileSync(new URL(path, root), 'utf8');

/** A C constant expression of integers, +, * and parentheses, evaluated without eval. */
function evaluateC(expression: string): number {
  const tokens = expression.match(/\d+|[-+*()]/g) ?? [];
  assert.equal(tokens.join(''), expression.replace(/\s+/g, ''), `not a simple integer expression: ${expression}`);
  let at = 0;
  const primary = (): number => {
    const token = tokens[at++]!;
    if (token !== '(') return Number(token);
    const value = sum();
    assert.equal(tokens[at++], ')');
    return value;
  };
  const product = (): number => {
    let value = primary();
    while (tokens[at] === '*') {
      at++;
      value *= primary();
    }
    return value;
  };
  const sum = (): number => {
    let value = product();
    while (tokens[at] === '+' || tokens[at] === '-') value = tokens[at++] === '+' ? value + product() : value - product();
    return value;
  };
  const value = sum();
  assert.equal(at, tokens.length, `left over in ${expression}`);
  return value;
}

describe('msize: one number for the launcher, the guest module and the guest mount', () => {
  it("9pnet_pocketvm's PVM_MAX_MSIZE is NAMESPACE_MSIZE", () => {
    const source = read('payload/kmod/9pnet_pocketvm/9pnet_pocketvm.c');
    const defined = /^#define\s+PVM_MAX_MSIZE\s+(.+)$/m.exec(source);
    assert.ok(defined, 'PVM_MAX_MSIZE is defined');
    assert.equal(evaluateC(defined[1]!.trim()), NAMESPACE_MSIZE);
  });

  it('the guest mounts the namespace with msize=NAMESPACE_MSIZE (and its comment says the same)', () => {
    const script = read('payload/rootfs/etc/pocketvm/boot.d/40-namespace.sh');
    const mounted = /^opts=.*\bmsize=(\d+)/m.exec(script);
    assert.ok(mounted, 'the mount options name an msize');
    assert.equal(Number(mounted[1]), NAMESPACE_MSIZE);
    const every = [...script.matchAll(/\bmsize=(\d+)/g)].map((m) => Number(m[1]));
    assert.deepEqual([...new Set(every)], [NAMESPACE_MSIZE]);
  });

  it('a placed read of the largest message fits the page list the transport accepts', () => {
    assert.equal(MAX_SEGMENTS, Math.ceil(NAMESPACE_MSIZE / 4096) + 1);
  });
});
