// Progress lines as a person reads them without a terminal: counts of packages
// or files as counts, bytes as bytes (the payload build used to print
// "(0 KiB of 0 KiB)" beside every package).
import assert from 'node:assert/strict';
import { Output } from '../../src/cli/output.ts';
import { progressRenderer, type ProgressEvent } from '../../src/cli/progress.ts';

function rendered(events: ProgressEvent[]): string {
  const lines: string[] = [];
  const write = process.stderr.write;
  const tty = process.stderr.isTTY;
  process.stderr.isTTY = false;
  process.stderr.write = ((chunk: string) => {
    lines.push(String(chunk));
    return true;
  }) as typeof process.stderr.write;
  try {
    const { onProgress, finish } = progressRenderer(new Output({ json: false }));
    for (const event of events) onProgress(event);
    finish();
  } finally {
    process.stderr.write = write;
    process.stderr.isTTY = tty;
  }
  return lines.join('');
}

describe('progress lines', () => {
  const previous = process.env['NO_COLOR'];
  before(() => (process.env['NO_COLOR'] = '1'));
  after(() => (previous === undefined ? delete process.env['NO_COLOR'] : (process.env['NO_COLOR'] = previous)));

  it('counts packages as packages: "(3 of 41)", no bytes', () => {
    const text = rendered([{ step: 'download', message: 'busybox-static_1.35.0-4+b3_amd64.deb', done: 3, total: 41 }]);
    assert.match(text, /busybox-static_1\.35\.0-4\+b3_amd64\.deb \(3 of 41\)/);
    assert.doesNotMatch(text, /KiB|MiB/);
  });

  it('shows bytes as bytes when the event says so', () => {
    const text = rendered([{ step: 'copy', message: 'copying default/initrd.img', done: 1024 * 1024, total: 24 * 1024 * 1024, unit: 'bytes' }]);
    assert.match(text, /copying default\/initrd\.img \(1\.0 MiB of 24\.0 MiB\)/);
  });
});
