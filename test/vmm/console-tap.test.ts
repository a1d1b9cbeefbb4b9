// The console log on the stick is bounded: a guest printing without end fills
// it up to CONSOLE_LOG_MAX_BYTES and one line says the rest was not kept; the
// listeners (an attached terminal) still get every byte.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { duplexPair } from 'node:stream';
import { CONSOLE_LOG_MAX_BYTES, ConsoleTap } from '../../src/vmm/console-tap.ts';

describe('console log on the stick', () => {
  it(`stops at ${CONSOLE_LOG_MAX_BYTES / 1024 ** 2} MiB with one line; listeners still see everything`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pocketvm-console-'));
    try {
      const log = join(dir, 'console.log');
      const [guest, launcherSide] = duplexPair();
      const tap = new ConsoleTap(launcherSide, log);
      let seen = 0;
      tap.on('data', (chunk) => (seen += chunk.length));
      const line = Buffer.from(`${'x'.repeat(99)}\n`);
      const total = CONSOLE_LOG_MAX_BYTES + 2 * 1024 * 1024;
      for (let sent = 0; sent < total; sent += line.length) guest.write(line);
      await new Promise((resolve) => setTimeout(resolve, 200));
      guest.end();
      launcherSide.destroy();
      await new Promise((resolve) => setTimeout(resolve, 300));
      const text = readFileSync(log, 'latin1');
      const marker = '\n[pocketvm: this log stops here, at its cap of 8 MiB; the rest of this session was not kept]\n';
      // The line saying so fits under the cap (src/primitives/capped-log.ts).
      assert.ok(text.length <= CONSOLE_LOG_MAX_BYTES && text.length > CONSOLE_LOG_MAX_BYTES - 1024, `${text.length} bytes`);
      assert.ok(text.endsWith(marker));
      assert.ok(text.startsWith('x'.repeat(99)));
      assert.ok(seen >= total, `listeners saw ${seen} of ${total} bytes`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
