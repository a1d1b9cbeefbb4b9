// What the network test and bench/network run on the host's 127.0.0.1 for a
// guest on user-mode networking (docs/network.md): a tiny DNS server that
// answers one name with 10.0.2.2 (user-mode networking's address for the
// host's 127.0.0.1), an HTTP server that records every request (and serves a
// body of a given size for throughput), and a way to run the launcher with
// /etc/resolv.conf naming that DNS server. libslirp forwards the guest's DNS
// to the resolvers in the QEMU process's /etc/resolv.conf, so the launcher
// runs in a private mount namespace (unshare -m, root) with a resolv.conf
// bind-mounted over the host's: no outside network is needed, and the host's
// own resolv.conf is untouched.
import { createSocket, type Socket } from 'node:dgram';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HOST_LOOPBACK_FROM_GUEST } from '../../src/session/network-setting.ts';

/** The guest's address for the host's 127.0.0.1 under user-mode networking. */
export const HOST_FROM_GUEST = HOST_LOOPBACK_FROM_GUEST;

export interface DnsServer {
  /** Every name asked, lower case, in order (A and AAAA both). */
  readonly queries: string[];
  close(): Promise<void>;
}

/** Answers A queries for `names` with `address`; every other name is NXDOMAIN, AAAA for `names` is empty. */
export async function startDnsServer(names: readonly string[], address = HOST_FROM_GUEST): Promise<DnsServer> {
  const known = new Set(names.map((name) => name.toLowerCase()));
  const queries: string[] = [];
  const socket: Socket = createSocket('udp4');
  socket.on('message', (query, from) => {
    const question = parseQuestion(query);
    if (!question) return;
    queries.push(question.name);
    const found = known.has(question.name);
    const answer = found && question.type === 1 ? Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, ...address.split('.').map(Number)]) : Buffer.alloc(0);
    const header = Buffer.alloc(12);
    query.copy(header, 0, 0, 2);
    // QR, the query's RD, RA; NXDOMAIN for names we do not serve.
    header.writeUInt16BE(0x8080 | (query.readUInt16BE(2) & 0x0100) | (found ? 0 : 3), 2);
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(answer.length > 0 ? 1 : 0, 6);
    socket.send(Buffer.concat([header, query.subarray(12, question.end), answer]), from.port, from.address);
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(53, '127.0.0.1', () => resolve());
  });
  return { queries, close: () => new Promise((resolve) => socket.close(() => resolve())) };
}

function parseQuestion(query: Buffer): { name: string; type: number; end: number } | undefined {
  if (query.length < 17 || query.readUInt16BE(4) !== 1) return undefined;
  const labels: string[] = [];
  let at = 12;
  while (at < query.length && query[at] !== 0) {
    const length = query[at]!;
    if (length > 63) return undefined;
    labels.push(query.toString('latin1', at + 1, at + 1 + length));
    at += 1 + length;
  }
  if (at + 5 > query.length) return undefined;
  return { name: labels.join('.').toLowerCase(), type: query.readUInt16BE(at + 1), end: at + 5 };
}

export interface RecordingHttpServer {
  port: number;
  /** `METHOD target` of every request, in order (a proxied request's target is the absolute URL). */
  readonly requests: string[];
  close(): Promise<void>;
}

/** Answers every request with `pocketvm-net <target>`; `/bytes/N` answers N bytes. */
export async function startHttpServer(): Promise<RecordingHttpServer> {
  const requests: string[] = [];
  const server: Server = createServer((request, response) => {
    requests.push(`${request.method} ${request.url}`);
    const size = /\/bytes\/(\d+)$/.exec(request.url ?? '')?.[1];
    if (size) {
      response.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size });
      const chunk = Buffer.alloc(1 << 20, 0x5a);
      let left = Number(size);
      const more = () => {
        while (left > 0) {
          const piece = chunk.subarray(0, Math.min(left, chunk.length));
          left -= piece.length;
          if (!response.write(piece)) return void response.once('drain', more);
        }
        response.end();
      };
      more();
      return;
    }
    response.end(`pocketvm-net ${request.url}\n`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    requests,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/**
 * A command line that runs `argv` in a private mount namespace whose
 * /etc/resolv.conf names 127.0.0.1 (startDnsServer), with the file to remove
 * afterwards. Needs root (unshare -m).
 */
export async function withResolverOnLoopback(argv: readonly string[]): Promise<{ command: string; args: string[]; dispose: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'pocketvm-net-'));
  const resolvConf = join(dir, 'resolv.conf');
  await writeFile(resolvConf, 'nameserver 127.0.0.1\n');
  return {
    command: 'unshare',
    args: ['-m', '--propagation', 'private', '--', 'sh', '-c', 'mount --bind "$0" /etc/resolv.conf && exec "$@"', resolvConf, ...argv],
    dispose: () => rm(dir, { recursive: true, force: true }),
  };
}

/** unshare -m and port 53 need root; the test says so instead of failing elsewhere. */
export const canRunLoopbackResolver = process.getuid?.() === 0;
