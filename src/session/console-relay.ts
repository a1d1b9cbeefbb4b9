// `launcher console NAME` on the session's side (zones' `zlogin -C`): once the
// `console-stream` request line is read, the connection carries raw bytes
// both ways — first the console's recent history (src/vmm/console-tap.ts),
// then what the guest prints as it prints it; what the client sends is typed
// into the console. Detaching is the client's affair: it just closes.
import type { Socket } from 'node:net';
import type { ConsoleTap } from '../vmm/console-tap.ts';

export function relayConsole(console: ConsoleTap, socket: Socket, rest: Buffer): void {
  const reply = `${JSON.stringify({ ok: true, result: { attached: true } })}\n`;
  socket.write(reply);
  socket.write(console.history());
  const onData = (chunk: Buffer) => {
    if (!socket.destroyed) socket.write(chunk);
  };
  console.on('data', onData);
  if (rest.length > 0) console.write(rest);
  socket.on('data', (chunk: Buffer) => console.write(chunk));
  const detach = () => console.off('data', onData);
  socket.on('close', detach);
  socket.on('error', detach);
  console.stream.once('close', () => socket.end());
}
