// The in-process figures bench/ninep and bench/ninep-in-process share: one
// listing of a folder and a walk + getattr + clunk of each of its `files`
// names (f0, f1, ...) through the 9P server on a backend, no guest.
import { duplexPair } from 'node:stream';
import type { NinepBackend } from '../src/ninep/backend.ts';
import { serveNinep } from '../src/ninep/server.ts';
import { NAMESPACE_MSIZE } from '../src/ninep/msize.ts';
import { NinepClient } from '../test/ninep/client.ts';

export async function inProcessFigures(backend: NinepBackend, dir: string[], files: number): Promise<{ readdirOps: number; lookupOps: number }> {
  const [a, b] = duplexPair();
  const server = serveNinep(a, backend, { closeBackend: false, maxMsize: NAMESPACE_MSIZE });
  const c = new NinepClient(b);
  try {
    await c.version(NAMESPACE_MSIZE);
    await c.attach(1);
    let started = performance.now();
    const fid = await c.open(1, dir, 0);
    const listed = (await c.readdirAll(fid, NAMESPACE_MSIZE - 24)).length - 2;
    await c.clunk(fid);
    const readdirOps = listed / ((performance.now() - started) / 1000);
    started = performance.now();
    for (let i = 0; i < files; i++) {
      const w = await c.walk(1, [...dir, `f${i}`]);
      await c.getattr(w.fid);
      await c.clunk(w.fid);
    }
    return { readdirOps, lookupOps: files / ((performance.now() - started) / 1000) };
  } finally {
    b.destroy();
    await server.closed;
  }
}
