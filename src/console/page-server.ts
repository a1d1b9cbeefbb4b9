// The console page's HTTP server (docs/console-page.md): on 127.0.0.1 at a
// random port, every request checked by page-access.ts, every answer with a
// strict content security policy (scripts and styles from this origin only,
// none inline, no framing). It serves the page and noVNC, pushes the page's
// state (page-state.ts) as server-sent events, takes the sign-in and the
// controls, and bridges the screen's websocket to QEMU's VNC (vnc-bridge.ts).
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { extname, join, normalize, sep } from 'node:path';
import { WebSocketServer } from 'ws';
import { asPocketError } from '../errors.ts';
import { consoleAssetDirs, type ConsoleAssetDirs } from './asset-dirs.ts';
import { type AccessRefusal, PAGE_HOST, PageAccess, REFUSAL_TEXT } from './page-access.ts';
import { type PagePhase, PageState } from './page-state.ts';
import { bridgeToVnc } from './vnc-bridge.ts';

export type PageControl = 'shutdown' | 'suspend' | 'eject';
export const PAGE_CONTROLS: readonly PageControl[] = ['shutdown', 'suspend', 'eject'];

/** What the page asks of the launcher; the caller (src/cli/console-page.ts) answers with the session. */
export interface PageHandlers {
  /** Checks the passphrase (argon2id, the login's back-off); a refusal is a PocketError the page shows. The passphrase is the caller's to zero. */
  signIn(user: string, passphrase: Buffer): Promise<void>;
  control(action: PageControl): Promise<void>;
  /** Confirms a table rule waiting for the signed-in person (its id, their passphrase); says what it did. The passphrase is the caller's to zero. */
  confirmRule(id: string, passphrase: Buffer): Promise<string>;
  status(): Promise<unknown>;
  /** QEMU's VNC socket once the guest runs with a screen. */
  vncSocket(): string | undefined;
}

export const CONTENT_SECURITY_POLICY =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy': CONTENT_SECURITY_POLICY,
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'cache-control': 'no-store',
};

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

/** A passphrase and a control request are small; anything bigger is not the page's. */
const MAX_BODY_BYTES = 4096;

function send(response: ServerResponse, status: number, body: string, type = 'text/plain; charset=utf-8', headers: Record<string, string> = {}): void {
  response.writeHead(status, { ...SECURITY_HEADERS, 'content-type': type, ...headers });
  response.end(body);
}

function sendJson(response: ServerResponse, status: number, value: unknown): void {
  send(response, status, JSON.stringify(value), 'application/json');
}

async function readBody(request: IncomingMessage): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    length += chunk.length;
    if (length > MAX_BODY_BYTES) {
      for (const held of chunks) held.fill(0);
      return undefined;
    }
    chunks.push(chunk);
  }
  const body = Buffer.alloc(length);
  let at = 0;
  for (const chunk of chunks) {
    chunk.copy(body, at);
    at += chunk.length;
    chunk.fill(0);
  }
  return body;
}

/** A file below `root` named by the request path's rest, or undefined (no `..`, only known types). */
function fileUnder(root: string, rest: string): string | undefined {
  const path = normalize(join(root, decodeURIComponent(rest)));
  if (!path.startsWith(root + sep) || !(extname(path) in TYPES)) return undefined;
  return path;
}

export class ConsolePage {
  readonly access: PageAccess;
  readonly state: PageState;
  readonly #server: Server;
  readonly #handlers: PageHandlers;
  readonly #dirs: ConsoleAssetDirs;
  readonly #events = new Set<ServerResponse>();
  readonly #sockets = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 1 << 20 });

  private constructor(server: Server, port: number, handlers: PageHandlers, initial: PagePhase, dirs: ConsoleAssetDirs) {
    this.#server = server;
    this.access = new PageAccess(port);
    this.state = new PageState(initial);
    this.#handlers = handlers;
    this.#dirs = dirs;
    server.on('request', (request: IncomingMessage, response: ServerResponse) => {
      this.#handle(request, response).catch((error: unknown) => {
        if (!response.headersSent) send(response, 500, asPocketError(error).message);
        else response.destroy();
      });
    });
    server.on('upgrade', (request: IncomingMessage, socket, head) => this.#upgrade(request, socket as import('node:net').Socket, head));
  }

  /** Listens on 127.0.0.1 at a port the system picks. */
  static async start(handlers: PageHandlers, initial: PagePhase, dirs: ConsoleAssetDirs = consoleAssetDirs()): Promise<ConsolePage> {
    const server = createServer({ requestTimeout: 30_000 });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, PAGE_HOST, () => resolve());
    });
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('the console page has no port');
    return new ConsolePage(server, address.port, handlers, initial, dirs);
  }

  /** The address `status` names (without the token). */
  get address(): string {
    return `${this.access.origin}/`;
  }

  #refuse(response: ServerResponse, why: AccessRefusal | 'token'): void {
    send(response, 403, REFUSAL_TEXT[why]);
  }

  async #handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const changes = request.method !== 'GET' && request.method !== 'HEAD';
    const url = new URL(request.url ?? '/', this.access.origin);
    // The first load: the token for the cookie, then the page without the token in its address.
    if (url.pathname === '/' && url.searchParams.has('t')) {
      const refusal = this.access.check(request, { changes, needsCookie: false });
      if (refusal) return this.#refuse(response, refusal);
      if (!this.access.exchange(url.searchParams.get('t'))) return this.#refuse(response, 'token');
      return send(response, 303, 'signed in to the page', undefined, { location: '/', 'set-cookie': this.access.cookieHeader() });
    }
    const refusal = this.access.check(request, { changes, needsCookie: true });
    if (refusal) return this.#refuse(response, refusal);
    const route = `${request.method} ${url.pathname}`;
    if (route === 'GET /') return this.#file(response, join(this.#dirs.page, 'index.html'));
    if (request.method === 'GET' && url.pathname.startsWith('/page/')) {
      const file = fileUnder(this.#dirs.page, url.pathname.slice('/page/'.length));
      return file ? this.#file(response, file) : send(response, 404, 'not found');
    }
    if (request.method === 'GET' && /^\/novnc\/(core|vendor)\//.test(url.pathname)) {
      const file = fileUnder(this.#dirs.novnc, url.pathname.slice('/novnc/'.length));
      return file ? this.#file(response, file) : send(response, 404, 'not found');
    }
    if (route === 'GET /api/events') return this.#eventStream(request, response);
    if (route === 'GET /api/status') return sendJson(response, 200, await this.#handlers.status());
    if (route === 'POST /api/sign-in') return this.#signIn(request, response, url);
    if (route === 'POST /api/control') return this.#control(request, response, url);
    if (route === 'POST /api/confirm') return this.#confirm(request, response, url);
    send(response, 404, 'not found');
  }

  async #file(response: ServerResponse, path: string): Promise<void> {
    let body: Buffer;
    try {
      body = await readFile(path);
    } catch {
      return send(response, 404, 'not found');
    }
    response.writeHead(200, { ...SECURITY_HEADERS, 'content-type': TYPES[extname(path)] ?? 'application/octet-stream' });
    response.end(body);
  }

  #eventStream(request: IncomingMessage, response: ServerResponse): void {
    response.writeHead(200, { ...SECURITY_HEADERS, 'content-type': 'text/event-stream' });
    this.#events.add(response);
    const unsubscribe = this.state.subscribe((state) => response.write(`data: ${JSON.stringify(state)}\n\n`));
    request.on('close', () => {
      unsubscribe();
      this.#events.delete(response);
    });
  }

  /** The passphrase is the body's bytes (never a JSON string here), the user the query's. */
  async #signIn(request: IncomingMessage, response: ServerResponse, url: URL): Promise<void> {
    if (request.headers['content-type'] !== 'application/octet-stream') return send(response, 415, 'the passphrase comes as application/octet-stream');
    const passphrase = await readBody(request);
    if (!passphrase) return send(response, 413, 'too long');
    try {
      if (this.state.current.phase !== 'sign-in') return sendJson(response, 409, { ok: false, message: 'already signed in' });
      await this.#handlers.signIn(url.searchParams.get('user') ?? '', passphrase);
      sendJson(response, 200, { ok: true });
    } catch (error) {
      const failure = asPocketError(error);
      sendJson(response, 401, { ok: false, message: failure.message, ...(failure.hint ? { hint: failure.hint } : {}) });
    } finally {
      passphrase.fill(0);
    }
  }

  /** A waiting rule's confirmation: the rule's id in the query, the passphrase as the body's bytes, as for the sign-in. */
  async #confirm(request: IncomingMessage, response: ServerResponse, url: URL): Promise<void> {
    if (request.headers['content-type'] !== 'application/octet-stream') return send(response, 415, 'the passphrase comes as application/octet-stream');
    const passphrase = await readBody(request);
    if (!passphrase) return send(response, 413, 'too long');
    try {
      if (this.state.current.phase !== 'running') return sendJson(response, 409, { ok: false, message: 'the guest is not running' });
      sendJson(response, 200, { ok: true, message: await this.#handlers.confirmRule(url.searchParams.get('rule') ?? '', passphrase) });
    } catch (error) {
      const failure = asPocketError(error);
      sendJson(response, 403, { ok: false, message: failure.message, ...(failure.hint ? { hint: failure.hint } : {}) });
    } finally {
      passphrase.fill(0);
    }
  }

  async #control(request: IncomingMessage, response: ServerResponse, url: URL): Promise<void> {
    const action = url.searchParams.get('action') as PageControl;
    if (!PAGE_CONTROLS.includes(action)) return sendJson(response, 400, { ok: false, message: `unknown control ${action}` });
    try {
      await this.#handlers.control(action);
      sendJson(response, 200, { ok: true });
    } catch (error) {
      const failure = asPocketError(error);
      sendJson(response, 409, { ok: false, message: failure.message, ...(failure.hint ? { hint: failure.hint } : {}) });
    }
  }

  #upgrade(request: IncomingMessage, socket: import('node:net').Socket, head: Buffer): void {
    const refuse = (status: string) => {
      socket.end(`HTTP/1.1 ${status}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
    };
    const refusal = this.access.check(request, { changes: true, needsCookie: true });
    if (refusal) return refuse('403 Forbidden');
    if (new URL(request.url ?? '/', this.access.origin).pathname !== '/vnc') return refuse('404 Not Found');
    const vncSocket = this.#handlers.vncSocket();
    if (!vncSocket) return refuse('409 Conflict');
    this.#sockets.handleUpgrade(request, socket, head, (ws) => bridgeToVnc(ws, vncSocket));
  }

  /** Shows `state` as the last one, lets the page read it, and stops serving. */
  async close(last?: PagePhase): Promise<void> {
    if (last) this.state.set(last);
    for (const response of this.#events) response.end();
    for (const client of this.#sockets.clients) client.terminate();
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#server.closeIdleConnections();
    await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 1_000).unref())]);
    this.#server.closeAllConnections();
  }
}
