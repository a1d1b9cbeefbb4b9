// Shared setup for the 9P tests: a LocalDirBackend on a directory, the server
// on one end of an in-process duplex pair, a test client on the other,
// versioned and attached (root fid 1).

import { duplexPair } from 'node:stream';
import { serveNinep } from '../../src/ninep/server.ts';
import type { NinepServer, NinepServerOptions } from '../../src/ninep/server.ts';
import { LocalDirBackend } from './local-backend.ts';
import { NinepClient } from './client.ts';

export interface Harness {
  dir: string;
  backend: LocalDirBackend;
  server: NinepServer;
  client: NinepClient;
  root: number;
  logs: string[];
  close(): Promise<void>;
}

export async function startHarness(dir: string, options: NinepServerOptions = {}): Promise<Harness> {
  const backend = await LocalDirBackend.open(dir);
  const [a, b] = duplexPair();
  const logs: string[] = [];
  const server = serveNinep(a, backend, { ...options, log: (m) => logs.push(m) });
  const client = new NinepClient(b);
  await client.version();
  const root = 1;
  await client.attach(root);
  return {
    dir,
    backend,
    server,
    client,
    root,
    logs,
    async close() {
      b.destroy();
      await server.closed;
    },
  };
}
