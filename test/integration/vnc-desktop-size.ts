// Just enough of an RFB (VNC) client to do what a browser window's resize
// does through noVNC: connect to QEMU's VNC server, say it understands
// ExtendedDesktopSize, and send SetDesktopSize (RFC 6143 and the community
// extension: message 251). QEMU passes the size on to the display device
// (virtio-gpu: a new preferred mode and a hotplug event in the guest).
import { connect, type Socket } from 'node:net';

const EXTENDED_DESKTOP_SIZE = -308;
const SET_DESKTOP_SIZE = 251;

export class VncDesktopSize {
  private buffer = Buffer.alloc(0);
  private waiter: (() => void) | undefined;
  /** After the handshake, the server's updates are dropped as they come. */
  private draining = false;

  private readonly socket: Socket;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      if (this.draining) return;
      this.buffer = Buffer.concat([this.buffer, chunk]);
      this.waiter?.();
    });
  }

  /** Connects with security type None (QEMU's VNC on a private UNIX socket) and asks for one full update. */
  static async open(path: string): Promise<VncDesktopSize> {
    const socket = connect(path);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const vnc = new VncDesktopSize(socket);
    const version = await vnc.read(12);
    if (!version.toString('latin1').startsWith('RFB 003.')) throw new Error(`not an RFB server: ${JSON.stringify(version.toString('latin1'))}`);
    socket.write('RFB 003.008\n');
    const count = (await vnc.read(1))[0]!;
    const types = [...(await vnc.read(count))];
    if (!types.includes(1)) throw new Error(`the VNC server offers no security type None (${types.join(', ')})`);
    socket.write(Buffer.from([1]));
    if ((await vnc.read(4)).readUInt32BE(0) !== 0) throw new Error('the VNC server refused the connection');
    socket.write(Buffer.from([1])); // ClientInit: shared
    const init = await vnc.read(24);
    await vnc.read(init.readUInt32BE(20)); // the desktop's name
    const encodings = Buffer.alloc(4 + 8);
    encodings.writeUInt8(2, 0); // SetEncodings
    encodings.writeUInt16BE(2, 2);
    encodings.writeInt32BE(0, 4); // Raw
    encodings.writeInt32BE(EXTENDED_DESKTOP_SIZE, 8);
    socket.write(encodings);
    const request = Buffer.alloc(10);
    request.writeUInt8(3, 0); // FramebufferUpdateRequest, not incremental
    request.writeUInt16BE(init.readUInt16BE(0), 6);
    request.writeUInt16BE(init.readUInt16BE(2), 8);
    socket.write(request);
    return vnc;
  }

  /** SetDesktopSize with one screen; what follows from the server is read and dropped. */
  setDesktopSize(width: number, height: number): void {
    const message = Buffer.alloc(8 + 16);
    message.writeUInt8(SET_DESKTOP_SIZE, 0);
    message.writeUInt16BE(width, 2);
    message.writeUInt16BE(height, 4);
    message.writeUInt8(1, 6);
    message.writeUInt32BE(0, 8); // screen id
    message.writeUInt16BE(0, 12);
    message.writeUInt16BE(0, 14);
    message.writeUInt16BE(width, 16);
    message.writeUInt16BE(height, 18);
    message.writeUInt32BE(0, 20);
    this.draining = true;
    this.buffer = Buffer.alloc(0);
    this.socket.write(message);
  }

  close(): void {
    this.socket.destroy();
  }

  private async read(n: number): Promise<Buffer> {
    while (this.buffer.length < n) {
      if (this.socket.destroyed) throw new Error('the VNC server closed the connection');
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
        setTimeout(resolve, 1000);
      });
    }
    const out = this.buffer.subarray(0, n);
    this.buffer = this.buffer.subarray(n);
    return out;
  }
}
