// The capped, rate-limited log every session log goes through
// (src/primitives/capped-log.ts): it never passes its cap, coalesces a repeated
// line, keeps a steady rate past a burst and says what it dropped, and applies
// its opening policy (moved to `.1` past half its cap).
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CappedLog, type LogLimits, type LogSink, MAX_LINE_BYTES, openStickLog } from '../../src/primitives/capped-log.ts';

function memorySink(): LogSink & { text: () => string } {
  const parts: string[] = [];
  return { write: (data) => void parts.push(data.toString()), end: async () => {}, text: () => parts.join('') };
}

const lines = (overrides: Partial<LogLimits> = {}): LogLimits => ({
  maxBytes: 1024 * 1024,
  mode: 'lines',
  linesPerSecond: 10,
  burst: 50,
  open: 'append',
  ...overrides,
});

describe('capped log on the stick', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'pocketvm-capped-log-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('a flood of distinct lines never passes the cap, and one line says where the log stops', async () => {
    const path = join(dir, 'flood.log');
    const writer = openStickLog(path, { maxBytes: 64 * 1024, mode: 'lines', open: 'append' });
    for (let i = 0; i < 100_000; i++) writer.line(`9p: Twalk failed: error ${i} from the guest`);
    await writer.close();
    const text = readFileSync(path, 'utf8');
    assert.ok(statSync(path).size <= 64 * 1024, `${statSync(path).size} bytes`);
    assert.match(text, /error 0 from the guest\n/);
    assert.match(text, /\[pocketvm: this log stops here, at its cap of 64 KiB; the rest of this session was not kept\]\n$/);
  });

  it('the cap counts what the file held from earlier sessions', async () => {
    const path = join(dir, 'kept.log');
    writeFileSync(path, 'x'.repeat(20 * 1024));
    const writer = openStickLog(path, { maxBytes: 64 * 1024, mode: 'lines', open: 'append' });
    for (let i = 0; i < 10_000; i++) writer.line(`line ${i}`);
    await writer.close();
    assert.ok(statSync(path).size <= 64 * 1024);
    assert.ok(readFileSync(path, 'utf8').startsWith('x'.repeat(20 * 1024)));
  });

  it('a log at half its cap or more is moved to .1 and started afresh', async () => {
    const path = join(dir, 'old.log');
    writeFileSync(path, 'earlier session\n'.repeat(3000));
    const writer = openStickLog(path, { maxBytes: 64 * 1024, mode: 'lines', open: 'append' });
    writer.line('this session');
    await writer.close();
    assert.equal(readFileSync(path, 'utf8'), 'this session\n');
    assert.equal(readFileSync(`${path}.1`, 'utf8'), 'earlier session\n'.repeat(3000));
  });

  it('repeated identical lines are coalesced into one count', () => {
    const sink = memorySink();
    const log = new CappedLog(sink, lines({ linesPerSecond: undefined }));
    for (let i = 0; i < 10_000; i++) log.line('guest registry channel: a request without a valid id was refused');
    log.line('something else');
    assert.equal(sink.text(), 'guest registry channel: a request without a valid id was refused\n… the line above repeated 9999 more times\nsomething else\n');
  });

  it('past the burst, lines beyond the rate are dropped and counted; the rate comes back with time', () => {
    const sink = memorySink();
    let now = 0;
    const log = new CappedLog(sink, lines({ linesPerSecond: 10, burst: 50 }), { now: () => now });
    for (let i = 0; i < 1000; i++) log.line(`error ${i}`);
    now += 1000; // one second later: ten more lines are allowed
    for (let i = 1000; i < 1020; i++) log.line(`error ${i}`);
    log.flushNotes();
    const out = sink.text().split('\n').filter(Boolean);
    assert.deepEqual(
      out.slice(0, 50),
      Array.from({ length: 50 }, (_, i) => `error ${i}`),
    );
    assert.equal(out[50], '… 950 lines dropped (more than 10 a second)');
    assert.deepEqual(
      out.slice(51, 61),
      Array.from({ length: 10 }, (_, i) => `error ${1000 + i}`),
    );
    assert.equal(out[61], '… 10 lines dropped (more than 10 a second)');
    assert.equal(out.length, 62);
  });

  it('the counts are written by themselves a moment after a flood stops', async () => {
    const sink = memorySink();
    const log = new CappedLog(sink, lines());
    for (let i = 0; i < 5; i++) log.line('same');
    await new Promise((resolve) => setTimeout(resolve, 1300));
    assert.equal(sink.text(), 'same\n… the line above repeated 4 more times\n');
  });

  it('control characters and over-long lines from a guest are tamed', () => {
    const sink = memorySink();
    const log = new CappedLog(sink, lines());
    log.line('forged\nlauncher: all is well\x1b[2J');
    log.line('y'.repeat(MAX_LINE_BYTES * 3));
    const [first, second] = sink.text().split('\n');
    assert.equal(first, 'forged?launcher: all is well?[2J');
    assert.equal(Buffer.byteLength(second!), MAX_LINE_BYTES + Buffer.byteLength('…'));
  });

  it('writers of one path share its cap; chunks are split into lines per writer', async () => {
    const path = join(dir, 'shared.log');
    const qemu = openStickLog(path, { maxBytes: 64 * 1024, mode: 'lines', open: 'append' });
    const ninep = openStickLog(path, { maxBytes: 64 * 1024, mode: 'lines', open: 'append' });
    qemu.write('qemu: warn');
    ninep.line('launcher: 9p: note');
    qemu.write('ing one\n');
    for (let i = 0; i < 20_000; i++) (i % 2 ? qemu : ninep).line(`flood ${i}`);
    await qemu.close();
    await ninep.close();
    const text = readFileSync(path, 'utf8');
    assert.ok(text.startsWith('launcher: 9p: note\nqemu: warning one\nflood 0\n'), text.slice(0, 100));
    assert.ok(statSync(path).size <= 64 * 1024);
  });

  it('bytes mode keeps every byte up to the cap, then one line', async () => {
    const path = join(dir, 'console.log');
    writeFileSync(path, 'previous boot');
    const writer = openStickLog(path, { maxBytes: 64 * 1024, mode: 'bytes', open: 'fresh' });
    const chunk = Buffer.from('same line\n'.repeat(100));
    for (let i = 0; i < 200; i++) writer.write(chunk);
    await writer.close();
    const text = readFileSync(path, 'utf8');
    assert.ok(statSync(path).size <= 64 * 1024);
    assert.ok(text.startsWith('same line\nsame line\n'));
    assert.ok(!text.includes('previous boot'));
    assert.ok(text.endsWith('the rest of this session was not kept]\n'));
  });
});
