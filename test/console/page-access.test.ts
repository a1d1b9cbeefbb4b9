import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { PageAccess } from '../../src/console/page-access.ts';

const requestWith = (headers: Record<string, string>) => ({ headers }) as unknown as IncomingMessage;

describe('the console page: who may use it', () => {
  const access = new PageAccess(40123);
  const host = '127.0.0.1:40123';

  it('the one-time token is exchanged once, and only the right one', () => {
    const fresh = new PageAccess(40124);
    const token = new URL(fresh.firstAddress).searchParams.get('t');
    assert.equal(fresh.exchange('x'.repeat(token!.length)), false);
    assert.equal(fresh.exchange(null), false);
    assert.equal(fresh.exchange(token), true);
    assert.equal(fresh.exchange(token), false, 'a spent token opens nothing');
    assert.equal(fresh.tokenSpent, true);
  });

  it('the cookie is HttpOnly, SameSite=Strict, and named for the port', () => {
    assert.match(access.cookieHeader(), /^pocketvm_40123=[A-Za-z0-9_-]{43}; HttpOnly; SameSite=Strict; Path=\/$/);
  });

  it('refuses another host name (DNS rebinding), another origin, an action without an origin, a request without the cookie', () => {
    const cookie = access.cookieHeader().split(';')[0]!;
    assert.equal(access.check(requestWith({ host: 'evil.example:40123', cookie }), { changes: false, needsCookie: true }), 'host');
    assert.equal(access.check(requestWith({ host: 'localhost:40123', cookie }), { changes: false, needsCookie: true }), 'host');
    assert.equal(access.check(requestWith({ host, cookie, origin: 'http://evil.example' }), { changes: false, needsCookie: true }), 'origin');
    assert.equal(access.check(requestWith({ host, cookie, origin: 'http://127.0.0.1:40124' }), { changes: false, needsCookie: true }), 'origin');
    assert.equal(access.check(requestWith({ host, cookie }), { changes: true, needsCookie: true }), 'no-origin');
    assert.equal(access.check(requestWith({ host }), { changes: false, needsCookie: true }), 'no-cookie');
    assert.equal(access.check(requestWith({ host, cookie: 'pocketvm_40123=wrong' }), { changes: false, needsCookie: true }), 'no-cookie');
    assert.equal(access.check(requestWith({ host, cookie, origin: access.origin }), { changes: true, needsCookie: true }), undefined);
  });
});
