// A layer held in memory: the payload defaults (parsed from registry.reg) and
// the session facts (from the HostProfile). Neither is ever written to disk.
import { checkValue, checkValueName, foldCase, keyComponents, type RegValue } from './value.ts';

export interface MemoryKey {
  /** The key path as first written (case preserved). */
  key: string;
  /** Folded value name → the value and its name as written. */
  values: Map<string, { name: string; value: RegValue }>;
  /** Folded child name → the child name as written. */
  children: Map<string, string>;
}

export class MemoryLayer {
  /** Folded key path → key; the root is ''. */
  readonly keys = new Map<string, MemoryKey>([['', { key: '', values: new Map(), children: new Map() }]]);

  /** Creates `key` and its ancestors; returns the key. */
  ensureKey(key: string): MemoryKey {
    const parts = keyComponents(key);
    let path = '';
    let node = this.keys.get('')!;
    for (const part of parts) {
      const folded = foldCase(part);
      const childPath = path === '' ? folded : `${path}\\${folded}`;
      let child = this.keys.get(childPath);
      if (!child) {
        child = { key: node.key === '' ? part : `${node.key}\\${part}`, values: new Map(), children: new Map() };
        this.keys.set(childPath, child);
        node.children.set(folded, part);
      }
      node = child;
      path = childPath;
    }
    return node;
  }

  key(key: string): MemoryKey | undefined {
    return this.keys.get(foldCase(key));
  }

  get(key: string, name: string): { name: string; value: RegValue } | undefined {
    return this.keys.get(foldCase(key))?.values.get(foldCase(name));
  }

  set(key: string, name: string, value: RegValue): void {
    checkValueName(name);
    checkValue(value);
    const node = this.ensureKey(key);
    const folded = foldCase(name);
    const existing = node.values.get(folded);
    node.values.set(folded, { name: existing?.name ?? name, value });
  }

  deleteValue(key: string, name: string): boolean {
    return this.keys.get(foldCase(key))?.values.delete(foldCase(name)) ?? false;
  }

  deleteKey(key: string): boolean {
    const folded = foldCase(key);
    if (folded === '' || !this.keys.has(folded)) return false;
    for (const path of [...this.keys.keys()]) if (path === folded || path.startsWith(`${folded}\\`)) this.keys.delete(path);
    const cut = folded.lastIndexOf('\\');
    this.keys.get(cut < 0 ? '' : folded.slice(0, cut))?.children.delete(folded.slice(cut + 1));
    return true;
  }

  clear(): void {
    for (const path of [...this.keys.keys()]) if (path !== '') this.keys.delete(path);
    const root = this.keys.get('')!;
    root.values.clear();
    root.children.clear();
  }
}
