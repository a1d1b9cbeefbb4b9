// The console page shows the guest's screen while the launch goes on: once
// QEMU listens on its VNC socket (src/session/features/display-feature.ts's
// onScreen), the page's state says so and the screen's websocket is bridged,
// before the session is ready (docs/console-page.md, "On the page").
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { OPEN_PAGE_ENV, type ServedPage, servePage } from '../../src/cli/console-page.ts';
import { Output } from '../../src/cli/output.ts';
import { displayFeature } from '../../src/session/features/display-feature.ts';

describe('the console page during the launch', () => {
  let dir: string;
  let vnc: Server;
  let served: ServedPage;

  before(async () => {
    process.env[OPEN_PAGE_ENV] = '0';
    dir = await mkdtemp(join(tmpdir(), 'pocketvm-page-screen-'));
    // A stand-in for QEMU's VNC server: it greets as RFB does.
    vnc = createServer((socket) => socket.end('RFB 003.008\n'));
    await new Promise<void>((resolve) => vnc.listen(join(dir, 'vnc.sock'), resolve));
    served = await servePage(new Output({ json: true }), { stickRoot: join(dir, 'stick'), signInOnPage: false, tell: () => {} });
  });
  after(async () => {
    await served?.page.close();
    vnc?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('the display feature tells the VNC socket while QEMU is paused, before the guest is ready', async () => {
    const told: string[] = [];
    const display = await displayFeature({ kind: 'page', onScreen: (socket) => told.push(socket) }, async () => dir);
    assert.deepEqual(told, []);
    await display.feature.attach?.({} as never);
    assert.deepEqual(told, [display.vncSocket]);
    assert.equal(display.vncSocket, join(dir, 'vnc.sock'));
  });

  it('the screen is bridged while starting, and the narration keeps it', async () => {
    const page = served.page;
    const cookie = await new Promise<string>((resolve, reject) => {
      void fetch(page.access.firstAddress, { redirect: 'manual' }).then((response) => resolve(response.headers.get('set-cookie')!.split(';')[0]!), reject);
    });
    const open = () =>
      new Promise<string>((resolve) => {
        const ws = new WebSocket(`${page.access.origin.replace('http', 'ws')}/vnc`, { headers: { origin: page.access.origin, cookie } });
        ws.on('message', (data: Buffer) => resolve(data.toString()));
        ws.on('unexpected-response', (_request, response) => resolve(`refused ${response.statusCode}`));
        ws.on('error', () => resolve('error'));
      });
    assert.equal(await open(), 'refused 409', 'no screen before QEMU listens');
    served.screen(join(dir, 'vnc.sock'));
    assert.deepEqual(page.state.current, { phase: 'starting', message: 'starting', screen: true });
    served.narrate('booting');
    assert.deepEqual(page.state.current, { phase: 'starting', message: 'booting', screen: true });
    assert.equal(await open(), 'RFB 003.008\n');
  });
});
