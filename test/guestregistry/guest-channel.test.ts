// The launcher's side of the guest registry channel, driven over an in-memory
// duplex pair exactly as the guest's `reg` command drives the virtio port.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Duplex, duplexPair } from 'node:stream';
import {
  escapeField,
  GUEST_EXIT,
  RequestLines,
  serveGuestChannel,
  type ChannelRegistry,
  type GuestChannelService,
} from '../../src/guestregistry/guest-channel.ts';
import { MemoryLayer } from '../../src/guestregistry/memory-layer.ts';
import { GuestRegistry } from '../../src/guestregistry/registry.ts';
import type { RegLayer, RegValue } from '../../src/guestregistry/value.ts';

/** Layers in memory with the GuestRegistry contract's precedence and write rules. */
class LayeredFake implements ChannelRegistry {
  readonly layers: Record<RegLayer, MemoryLayer> = {
    defaults: new MemoryLayer(),
    user: new MemoryLayer(),
    host: new MemoryLayer(),
    session: new MemoryLayer(),
  };
  readonly writes: string[] = [];
  exportText = 'Windows Registry Editor Version 5.00\r\n\r\n[Guest]\r\n"Hostname"="pocketvm"\r\n';
  exports = 0;
  get(key: string, name: string): { value: RegValue; layer: RegLayer } | undefined {
    for (const layer of ['session', 'host', 'user', 'defaults'] as const) {
      const found = this.layers[layer].get(key, name);
      if (found) return { value: found.value, layer };
    }
    return undefined;
  }
  set(layer: 'user', key: string, name: string, value: RegValue): void {
    this.writes.push(`set ${layer}`);
    this.layers[layer].set(key, name, value);
  }
  deleteValue(layer: 'user', key: string, name: string): boolean {
    this.writes.push(`deleteValue ${layer}`);
    return this.layers[layer].deleteValue(key, name);
  }
  deleteKey(layer: 'user', key: string): boolean {
    this.writes.push(`deleteKey ${layer}`);
    return this.layers[layer].deleteKey(key);
  }
  subkeys(key: string): string[] {
    const names = new Map<string, string>();
    for (const layer of Object.values(this.layers))
      for (const [folded, name] of layer.key(key)?.children ?? []) if (!names.has(folded)) names.set(folded, name);
    return [...names.values()];
  }
  values(key: string): Array<{ name: string; value: RegValue; layer: RegLayer }> {
    const out = new Map<string, { name: string; value: RegValue; layer: RegLayer }>();
    for (const layer of ['defaults', 'user', 'host', 'session'] as const)
      for (const [folded, v] of this.layers[layer].key(key)?.values ?? []) out.set(folded, { ...v, layer });
    return [...out.values()];
  }
  exportReg(): string {
    this.exports++;
    return this.exportText;
  }
}

/** The guest's end: sends request lines and collects each reply up to its status line. */
class GuestEnd {
  readonly stream: Duplex;
  #buffer = '';
  #waiters: Array<() => void> = [];
  #next = 0;
  constructor(stream: Duplex) {
    this.stream = stream;
    stream.setEncoding('utf8');
    stream.on('data', (text: string) => {
      this.#buffer += text;
      for (const wake of this.#waiters.splice(0)) wake();
    });
  }
  /** Lines received so far that end in "\n". */
  get lines(): string[] {
    return this.#buffer.split('\n').slice(0, -1);
  }
  async replyTo(id: string): Promise<string[]> {
    for (;;) {
      const mine = this.lines.filter((line) => line.startsWith(`${id}\t`));
      if (mine.some((line) => /^[^\t]+\t(ok|err\t)/.test(line))) return mine.map((line) => line.slice(id.length + 1));
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }
  /** One request the way `reg` sends it: escaped fields, a fresh id. */
  async request(...args: string[]): Promise<{ out: string[]; status: string }> {
    const id = `t${++this.#next}`;
    this.stream.write(`\n${[id, ...args.map(escapeField)].join('\t')}\n`);
    const reply = await this.replyTo(id);
    return { out: reply.slice(0, -1).map((line) => line.replace(/^\.\t/, '')), status: reply.at(-1)! };
  }
}

describe('guest registry channel', () => {
  let registry: LayeredFake;
  let service: GuestChannelService;
  let guest: GuestEnd;
  let launcherEnd: Duplex;
  const problems: string[] = [];

  beforeEach(() => {
    registry = new LayeredFake();
    registry.layers.defaults.set('Guest', 'Hostname', { type: 'string', data: 'pocketvm' });
    registry.layers.defaults.set('Guest', 'Keyboard', { type: 'string', data: 'us' });
    registry.layers.host.set('Machine', 'Cpus', { type: 'int32', data: 2 });
    registry.layers.session.set('Host', 'Os', { type: 'string', data: 'linux' });
    const [a, b] = duplexPair();
    launcherEnd = a;
    problems.length = 0;
    service = serveGuestChannel(a, registry, { onProblem: (m) => problems.push(m) });
    guest = new GuestEnd(b);
  });
  afterEach(() => {
    service.close();
    launcherEnd.destroy();
    guest.stream.destroy();
  });

  it('gets a value from the merged view', async () => {
    assert.deepEqual(await guest.request('get', 'guest', 'HOSTNAME'), { out: ['pocketvm'], status: 'ok' });
    assert.deepEqual(await guest.request('get', 'Machine', 'Cpus'), { out: ['2'], status: 'ok' });
    assert.deepEqual(await guest.request('get', 'Host', 'Os'), { out: ['linux'], status: 'ok' });
  });

  it('says a value is not set with exit code 1', async () => {
    const reply = await guest.request('get', 'Guest', 'Nope');
    assert.deepEqual(reply.out, []);
    assert.equal(reply.status, `err\t${GUEST_EXIT.notFound}\tGuest Nope is not set`);
  });

  it('writes every type to the user layer and reads it back', async () => {
    const cases: Array<[string, string[], RegValue, string[]]> = [
      ['string', ['tab\there\\and\nnewline'], { type: 'string', data: 'tab\there\\and\nnewline' }, ['tab\there\\and', 'newline']],
      ['expand-string', ['%HOME%\\x'], { type: 'expand-string', data: '%HOME%\\x' }, ['%HOME%\\x']],
      ['int32', ['-7'], { type: 'int32', data: -7 }, ['-7']],
      ['int64', ['9007199254740993'], { type: 'int64', data: 9007199254740993n }, ['9007199254740993']],
      ['bool', ['yes'], { type: 'bool', data: true }, ['true']],
      ['binary', ['00ff10'], { type: 'binary', data: Uint8Array.from([0, 255, 16]) }, ['00,ff,10']],
      ['multi-string', ['a', 'b c', ''], { type: 'multi-string', data: ['a', 'b c', ''] }, ['a', 'b c', '']],
      ['MULTI-STRING', [], { type: 'multi-string', data: [] }, []],
    ];
    for (const [type, texts, value, printed] of cases) {
      const name = `v-${type}`;
      assert.deepEqual(await guest.request('set', 'Tables\\Rules', name, type, ...texts), { out: [], status: 'ok' }, type);
      assert.deepEqual(registry.layers.user.get('Tables\\Rules', name)?.value, value, type);
      assert.deepEqual(await guest.request('get', 'tables\\rules', name), { out: printed, status: 'ok' }, type);
    }
    assert.ok(registry.writes.every((w) => w.endsWith(' user')));
  });

  it('never writes defaults or the host layer: a guest write lands in the user layer only', async () => {
    assert.equal((await guest.request('set', 'Guest', 'Hostname', 'string', 'mine')).status, 'ok');
    assert.equal(registry.layers.defaults.get('Guest', 'Hostname')?.value.data, 'pocketvm');
    assert.equal(registry.layers.user.get('Guest', 'Hostname')?.value.data, 'mine');
    // The host layer still wins over the user's write, as layers are read top-down.
    assert.equal((await guest.request('set', 'Machine', 'Cpus', 'int32', '4')).status, 'ok');
    assert.deepEqual((await guest.request('get', 'Machine', 'Cpus')).out, ['2']);
    assert.equal(registry.layers.host.get('Machine', 'Cpus')?.value.data, 2);
    // Deleting something only defaults hold is refused, and the default stays.
    assert.equal((await guest.request('del', 'Guest', 'Keyboard')).status, `err\t1\tGuest Keyboard is not in your layer`);
    assert.equal((await guest.request('del', 'Host')).status, `err\t1\tthe key Host is not in your layer`);
    assert.equal((await guest.request('del', 'Machine')).status, 'ok');
    assert.equal(registry.layers.host.get('Machine', 'Cpus')?.value.data, 2);
    assert.equal(registry.layers.session.get('Host', 'Os')?.value.data, 'linux');
    assert.ok(registry.writes.every((w) => w.endsWith(' user')));
  });

  it('deletes a value, then a whole key, from the user layer', async () => {
    await guest.request('set', 'App\\Sub', 'A', 'string', '1');
    await guest.request('set', 'App', 'B', 'string', '2');
    assert.equal((await guest.request('del', 'App', 'B')).status, 'ok');
    assert.equal((await guest.request('get', 'App', 'B')).status, `err\t1\tApp B is not set`);
    assert.equal((await guest.request('del', 'App')).status, 'ok');
    assert.equal((await guest.request('get', 'App\\Sub', 'A')).status, `err\t1\tApp\\Sub A is not set`);
  });

  it('lists subkeys and values with their layer, escaped onto one line each', async () => {
    await guest.request('set', 'Guest\\Extra', 'x', 'string', '1');
    await guest.request('set', 'Guest', 'Motd', 'string', 'two\nlines\tand a tab');
    const root = await guest.request('ls');
    assert.equal(root.status, 'ok');
    assert.deepEqual(root.out.sort(), ['Guest\\', 'Host\\', 'Machine\\']);
    const guestKey = await guest.request('ls', 'Guest');
    assert.deepEqual(guestKey.out, [
      'Extra\\',
      'Hostname\tstring\tdefaults\tpocketvm',
      'Keyboard\tstring\tdefaults\tus',
      'Motd\tstring\tuser\ttwo\\nlines\\tand a tab',
    ]);
  });

  it('exports the merged view as .reg lines', async () => {
    const reply = await guest.request('export');
    assert.deepEqual(reply, { out: ['Windows Registry Editor Version 5.00', '', '[Guest]', '"Hostname"="pocketvm"'], status: 'ok' });
  });

  it('answers malformed requests with an error and keeps serving', async () => {
    const bad = async (line: string): Promise<string | undefined> => {
      guest.stream.write(`${line}\n`);
      const reply = await guest.replyTo(line.split('\t')[0]!.match(/^[A-Za-z0-9_.:-]{1,64}$/) ? line.split('\t')[0]! : '-');
      return reply.at(-1);
    };
    assert.match((await bad('no-tab-here-but-valid-id'))!, /^err\t2\t"" is not a request/);
    assert.match((await bad('x1\tfly\tme'))!, /^err\t2\t"fly" is not a request/);
    assert.match((await bad('x2\tget\tGuest'))!, /^err\t2\tusage: reg get KEY NAME/);
    assert.match((await bad('x3\tget\tA\tB\tC'))!, /^err\t2\tusage: reg get KEY NAME/);
    assert.match((await bad('x4\tset\tA\tB\tsz\tv'))!, /^err\t2\t"sz" is not a type/);
    assert.match((await bad('x5\tset\tA\tB\tint32\t1e9x'))!, /^err\t2\t"1e9x" is not an int32/);
    assert.match((await bad('x6\tset\tA\tB\tint32\t1\t2'))!, /^err\t2\tusage: reg set/);
    assert.match((await bad('x7\tget\tA\\q\tB'))!, /^err\t2\tmalformed request: "\\q" is not an escape/);
    assert.match((await bad('x8\tget\tA\\'))!, /^err\t2\tmalformed request/);
    assert.match((await bad('x9\tset\tA\\\\\\\\B\tn\tstring\tv'))!, /^err\t2\tthe key path "A\\\\B" has an empty component/);
    const badId = await bad('not an id!\tget\tGuest\tHostname');
    assert.match(badId!, /^err\t2\tmalformed request: a line starts with an id/);
    assert.deepEqual(await guest.request('get', 'Guest', 'Hostname'), { out: ['pocketvm'], status: 'ok' });
  });

  it('refuses an overlong line without holding it, then serves the next request', async () => {
    service.close();
    const [a, b] = duplexPair();
    service = serveGuestChannel(a, registry, { maxRequestBytes: 1000, onProblem: (m) => problems.push(m) });
    guest = new GuestEnd(b);
    // Sent in pieces with no newline for a while: the server must drop, not buffer.
    for (let i = 0; i < 50; i++) guest.stream.write('x'.repeat(500));
    guest.stream.write('tail\nr1\tget\tGuest\tHostname\n');
    assert.match((await guest.replyTo('-')).at(-1)!, /^err\t2\tthe request is longer than the channel's limit of 1000 bytes/);
    assert.deepEqual(await guest.replyTo('r1'), ['.\tpocketvm', 'ok']);
    assert.equal(problems.length, 1);
    // A line just under the limit is fine.
    assert.deepEqual(await guest.request('set', 'K', 'n', 'string', 'y'.repeat(950)), { out: [], status: 'ok' });
  });

  it('handles requests split across chunks, several in one chunk, CRLF, and ignores blank lines', async () => {
    const line = 'c1\tget\tGuest\tHostname\r\nc2\tget\tGuest\tKeyboard\n\n\nc3\tget\tMachine\tCpus\n';
    for (const byte of Buffer.from(line)) guest.stream.write(Buffer.from([byte]));
    assert.deepEqual(await guest.replyTo('c1'), ['.\tpocketvm', 'ok']);
    assert.deepEqual(await guest.replyTo('c2'), ['.\tus', 'ok']);
    assert.deepEqual(await guest.replyTo('c3'), ['.\t2', 'ok']);
    assert.deepEqual(
      guest.lines.filter((l) => !/^c[123]\t/.test(l)),
      [],
    );
  });

  it('keeps UTF-8 intact when a multibyte character is split between chunks', async () => {
    const bytes = Buffer.from('u1\tset\tGuest\tZone\tstring\tZürich ☃\n');
    const cut = bytes.indexOf(Buffer.from('☃')) + 1;
    guest.stream.write(bytes.subarray(0, cut));
    guest.stream.write(bytes.subarray(cut));
    assert.deepEqual(await guest.replyTo('u1'), ['ok']);
    assert.equal(registry.layers.user.get('Guest', 'Zone')?.value.data, 'Zürich ☃');
  });

  it('reports a registry failure as exit 4 and keeps serving', async () => {
    registry.exportReg = () => {
      throw new Error('disk I/O error');
    };
    const reply = await guest.request('export');
    assert.equal(reply.status, 'err\t4\tthe registry failed: disk I/O error');
    assert.ok(problems.some((p) => p.includes('disk I/O error')));
    assert.equal((await guest.request('get', 'Guest', 'Hostname')).status, 'ok');
  });

  it('stops reading requests while the guest leaves its replies unread', async () => {
    service.close();
    const [a, b] = duplexPair();
    service = serveGuestChannel(a, registry);
    registry.exportText = `${'x'.repeat(20_000)}\n`;
    // 500 exports would be 10 MB of replies; the guest reads none of them yet.
    const requests = Array.from({ length: 500 }, (_, i) => `e${i}\texport\n`).join('');
    b.write(requests);
    await new Promise((r) => setTimeout(r, 50));
    assert.ok(registry.exports < 500, `answered ${registry.exports} of 500 with nobody reading`);
    assert.ok(a.writableLength < 2 * 1024 * 1024, `${a.writableLength} bytes of replies held`);
    // Reading drains it all.
    let text = '';
    b.setEncoding('utf8');
    b.on('data', (chunk: string) => (text += chunk));
    for (let i = 0; i < 200 && !text.includes('e499\tok\n'); i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(registry.exports, 500);
    assert.equal(text.match(/\tok\n/g)?.length, 500);
  });

  it('stops answering once closed', async () => {
    service.close();
    guest.stream.write('z1\tget\tGuest\tHostname\n');
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(guest.lines, []);
  });
});

describe('guest registry channel on a real GuestRegistry', () => {
  let dir: string;
  let file: string;
  let defaultsFile: string;
  let registry: GuestRegistry;
  let service: GuestChannelService;
  let guest: GuestEnd;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'pocketvm-channel-'));
    file = join(dir, 'registry.sqlite');
    defaultsFile = join(dir, 'registry.reg');
    writeFileSync(defaultsFile, 'Windows Registry Editor Version 5.00\r\n\r\n[HKEY_POCKETVM\\Guest]\r\n"Hostname"="pocketvm"\r\n"Keyboard"="us"\r\n');
    // Another PC's layer in the same file: the guest must never reach it.
    const elsewhere = GuestRegistry.open({ file, defaultsFile, hostId: 'other-host' });
    elsewhere.set('host', 'Machine', 'Cpus', { type: 'int32', data: 8 });
    elsewhere.close();
    registry = GuestRegistry.open({
      file,
      defaultsFile,
      hostId: 'this-host',
      session: [{ key: 'Host', name: 'Timezone', value: { type: 'string', data: 'Europe/Berlin' } }],
    });
    const [a, b] = duplexPair();
    service = serveGuestChannel(a, registry);
    guest = new GuestEnd(b);
  });
  afterEach(() => {
    service.close();
    guest.stream.destroy();
    registry.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('reads the merged view: defaults, session facts, not another host', async () => {
    assert.deepEqual(await guest.request('get', 'Guest', 'Hostname'), { out: ['pocketvm'], status: 'ok' });
    assert.deepEqual(await guest.request('get', 'Host', 'Timezone'), { out: ['Europe/Berlin'], status: 'ok' });
    assert.equal((await guest.request('get', 'Machine', 'Cpus')).status, 'err\t1\tMachine Cpus is not set');
  });

  it('writes only the user layer: defaults and the other host are untouched', async () => {
    assert.equal((await guest.request('set', 'Guest', 'Hostname', 'string', 'mybox')).status, 'ok');
    assert.equal((await guest.request('set', 'Machine', 'Cpus', 'int32', '3')).status, 'ok');
    assert.deepEqual(registry.get('Guest', 'Hostname'), { value: { type: 'string', data: 'mybox' }, layer: 'user' });
    assert.deepEqual(registry.getInLayer('defaults', 'Guest', 'Hostname'), { type: 'string', data: 'pocketvm' });
    assert.equal(registry.getInLayer('host', 'Machine', 'Cpus'), undefined);
    const other = GuestRegistry.open({ file, defaultsFile, hostId: 'other-host' });
    try {
      assert.deepEqual(other.getInLayer('host', 'Machine', 'Cpus'), { type: 'int32', data: 8 });
      assert.deepEqual(other.getInLayer('user', 'Machine', 'Cpus'), { type: 'int32', data: 3 });
    } finally {
      other.close();
    }
    // A well-known value keeps its type; a missing key is "not set".
    assert.match((await guest.request('set', 'Guest', 'Timezone', 'int32', '5')).status, /^err\t2\tGuest\\Timezone must be of type string/);
    assert.match((await guest.request('export', 'Nope')).status, /^err\t1\tthere is no key Nope/);
    assert.equal((await guest.request('del', 'Guest', 'Keyboard')).status, 'err\t1\tGuest Keyboard is not in your layer');
  });

  it('sees a change another process commits while it serves (launcher reg set)', async () => {
    const cli = GuestRegistry.open({ file, defaultsFile, hostId: 'this-host' });
    try {
      cli.set('user', 'Guest', 'Timezone', { type: 'string', data: 'Asia/Tokyo' });
    } finally {
      cli.close();
    }
    assert.deepEqual(await guest.request('get', 'guest', 'timezone'), { out: ['Asia/Tokyo'], status: 'ok' });
  });

  it('exports the merged view with the session facts', async () => {
    const reply = await guest.request('export');
    assert.equal(reply.status, 'ok');
    assert.equal(reply.out[0], 'Windows Registry Editor Version 5.00');
    assert.ok(reply.out.includes('[HKEY_POCKETVM\\Guest]'), reply.out.join('\n'));
    assert.ok(reply.out.includes('"Timezone"="Europe/Berlin"'), reply.out.join('\n'));
    assert.ok(!reply.out.some((line) => line.includes('\r')));
  });
});

describe('RequestLines', () => {
  it('cuts lines, strips CR, and reports an overlong line once', () => {
    const lines = new RequestLines(5);
    assert.deepEqual(lines.push(Buffer.from('ab\r\ncd')), ['ab']);
    assert.deepEqual(lines.push(Buffer.from('e\n')), ['cde']);
    const overlong = lines.push(Buffer.from('123456'));
    assert.deepEqual(overlong, []);
    const after = lines.push(Buffer.from('789\nok\n'));
    assert.equal(after.length, 2);
    assert.equal(typeof after[0], 'symbol');
    assert.equal(after[1], 'ok');
  });
});
