// What bench/at-rest and bench/quota both drive in process: the launcher's 9P
// server on a NamespaceBackend whose FIT entry /host/Notes is the folder
// under test, reached by the test 9P client over a stream pair with the
// session's msize, and the two timed loads they share.
import { duplexPair } from 'node:stream';
import type { NamespaceBackend } from '../src/dyntable/namespace-backend.ts';
import { type NinepServer, serveNinep } from '../src/ninep/server.ts';
import { NAMESPACE_MSIZE } from '../src/ninep/msize.ts';
import { NinepClient } from '../test/ninep/client.ts';

export const CHUNK = 1 << 20;
export const O_RDWR = 2;
export const O_RDONLY = 0;

export interface ServedClient {
  client: NinepClient;
  server: NinepServer;
  /** Ends the client's side (the server then closes). */
  hangUp(): void;
}

/** The 9P server on `backend`, with a client attached as fid 1 at its root. */
export async function servedClient(backend: NamespaceBackend): Promise<ServedClient> {
  const [serverEnd, clientEnd] = duplexPair();
  const server = serveNinep(serverEnd, backend, { maxMsize: NAMESPACE_MSIZE });
  const client = new NinepClient(clientEnd);
  await client.version(NAMESPACE_MSIZE);
  await client.attach(1);
  return { client, server, hangUp: () => clientEnd.destroy() };
}

/** Writes `mib` MiB into Notes/big in 1 MiB Twrites, then fsync; seconds taken. */
export async function timeWrite(client: NinepClient, mib: number): Promise<number> {
  const data = Buffer.alloc(CHUNK, 0x5a);
  const t = performance.now();
  const w = await client.create(1, ['Notes'], 'big', O_RDWR);
  for (let i = 0; i < mib; i++) await client.write(w, i * CHUNK, data);
  await client.call({ type: 'Tfsync', fid: w, datasync: 0 });
  await client.clunk(w);
  return (performance.now() - t) / 1000;
}

/** Creates `files` empty files in a new folder Notes/many (Twalk + Tlcreate + Tclunk each); seconds taken. */
export async function timeCreates(client: NinepClient, files: number): Promise<number> {
  const d = client.fid();
  await client.walk(1, ['Notes'], d);
  await client.call({ type: 'Tmkdir', dfid: d, name: 'many', mode: 0o755, gid: 0 });
  await client.clunk(d);
  const t = performance.now();
  for (let i = 0; i < files; i++) await client.clunk(await client.create(1, ['Notes', 'many'], `file-${i}`, O_RDWR));
  return (performance.now() - t) / 1000;
}
