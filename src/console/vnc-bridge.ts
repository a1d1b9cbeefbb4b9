// The screen's websocket: bytes of the RFB protocol between noVNC in the
// page and QEMU's VNC server on its private UNIX socket, both ways, as they
// come. The launcher is the only one who can reach that socket (its folder is
// 0700); the page reaches the launcher only through the checks of
// page-access.ts. One connection ends the other.
import { connect } from 'node:net';
import type { WebSocket } from 'ws';

export function bridgeToVnc(ws: WebSocket, vncSocket: string): void {
  const vnc = connect(vncSocket);
  vnc.setNoDelay(true);
  const end = () => {
    vnc.destroy();
    ws.terminate();
  };
  vnc.on('data', (chunk) => ws.send(chunk));
  ws.on('message', (data: Buffer | ArrayBuffer | Buffer[]) => {
    vnc.write(Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data));
  });
  vnc.on('error', end);
  vnc.on('close', end);
  ws.on('close', end);
  ws.on('error', end);
}
