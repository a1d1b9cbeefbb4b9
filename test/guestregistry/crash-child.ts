// Child of crash.test.ts: commits numbered transactions to the registry in a
// loop until it is killed, printing each number once its commit returned.
// Commit i sets Counter = i, rewrites slot i % SLOTS of Items, recreates the
// key Rotating\<i % 3>, and every 20th commit refreshes the last good copy,
// so a kill lands in the middle of all of these.
import { GuestRegistry } from '../../src/guestregistry/registry.ts';
import { commitContent, SLOTS } from './crash-model.ts';

const [file] = process.argv.slice(2);
const registry = GuestRegistry.open({ file: file!, hostId: 'crash-host', backupIntervalMs: 0 });
let i = (registry.getAs('Crash', 'Counter', 'int64') ?? -1n) + 1n;
process.stdout.write('ready\n');
for (;;) {
  const n = Number(i);
  registry.transaction(() => {
    registry.set('user', 'Crash', 'Counter', { type: 'int64', data: i });
    registry.set('user', 'Crash\\Items', `slot${n % SLOTS}`, { type: 'binary', data: commitContent(n) });
    registry.deleteKey('user', `Crash\\Rotating\\${n % 3}`);
    registry.set('user', `Crash\\Rotating\\${n % 3}`, 'by', { type: 'int32', data: n });
  });
  process.stdout.write(`${n}\n`);
  if (n % 20 === 0) registry.backup();
  i++;
}
