// Who may use the console page: only the browser the launcher opened. The
// page listens on 127.0.0.1 alone, on a random port; the address the launcher
// opens carries a one-time token, which the first load exchanges for an
// HttpOnly, SameSite=Strict cookie (the token is then spent: a copy of the
// address, from history or another local user's `ps`, opens nothing). Every
// request must name exactly this host and port (no DNS rebinding: a page of
// evil.example resolving to 127.0.0.1 sends its own Host), an Origin header,
// when there is one, must be this page's own, and a request that changes
// something (sign-in, controls, the screen's websocket) must carry one.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

export const PAGE_HOST = '127.0.0.1';

function sameSecret(expected: string, given: string | undefined): boolean {
  if (given === undefined || given.length !== expected.length) return false;
  return timingSafeEqual(Buffer.from(given), Buffer.from(expected));
}

export type AccessRefusal = 'host' | 'origin' | 'no-origin' | 'no-cookie';

export class PageAccess {
  readonly port: number;
  readonly #token = randomBytes(24).toString('base64url');
  readonly #cookie = randomBytes(32).toString('base64url');
  #spent = false;

  constructor(port: number) {
    this.port = port;
  }

  /** The page's origin, and its address without the token (what `status` names). */
  get origin(): string {
    return `http://${PAGE_HOST}:${this.port}`;
  }

  /** The address to open once: the origin with the one-time token. */
  get firstAddress(): string {
    return `${this.origin}/?t=${this.#token}`;
  }

  get tokenSpent(): boolean {
    return this.#spent;
  }

  /** Cookies are per host, not per port: the name carries the port, so two pages never overwrite each other's. */
  get #cookieName(): string {
    return `pocketvm_${this.port}`;
  }

  /** True once, for the right token: the caller then sets the cookie. */
  exchange(token: string | null): boolean {
    if (this.#spent || token === null || !sameSecret(this.#token, token)) return false;
    this.#spent = true;
    return true;
  }

  cookieHeader(): string {
    return `${this.#cookieName}=${this.#cookie}; HttpOnly; SameSite=Strict; Path=/`;
  }

  /** Why `request` is refused, or undefined. `changes`: a request that acts (POST, websocket) must name its origin. */
  check(request: IncomingMessage, options: { changes: boolean; needsCookie: boolean }): AccessRefusal | undefined {
    if (request.headers.host !== `${PAGE_HOST}:${this.port}`) return 'host';
    const origin = request.headers.origin;
    if (origin !== undefined && origin !== this.origin) return 'origin';
    if (options.changes && origin === undefined) return 'no-origin';
    if (options.needsCookie && !this.hasCookie(request)) return 'no-cookie';
    return undefined;
  }

  hasCookie(request: IncomingMessage): boolean {
    const header = request.headers.cookie;
    if (!header) return false;
    for (const part of header.split(';')) {
      const at = part.indexOf('=');
      if (at < 0) continue;
      if (part.slice(0, at).trim() === this.#cookieName && sameSecret(this.#cookie, part.slice(at + 1).trim())) return true;
    }
    return false;
  }
}

/** What a refused request is told (a page of its own, no detail an attacker could use). */
export const REFUSAL_TEXT: Record<AccessRefusal | 'token', string> = {
  host: 'refused: this page answers only to 127.0.0.1 at its own port',
  origin: 'refused: a request from another origin',
  'no-origin': 'refused: a request that acts must come from the page itself',
  'no-cookie': 'refused: open the address the launcher printed (it carries a one-time token)',
  token: 'refused: this address was already used or is wrong; launcher status names the page, and the launcher that served it printed the address it opened',
};
