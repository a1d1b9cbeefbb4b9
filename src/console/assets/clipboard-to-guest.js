// The text "Send to the guest" puts in the guest's clipboard, byte for byte.
//
// noVNC sends it in RFB's extended-clipboard Provide message the way that
// protocol asks: every line end made \r\n and a NUL after the text. QEMU
// (7.2, and upstream since: ui/vnc-clipboard.c) hands those bytes unchanged
// to the guest's agent (qemu-vdagent → spice-vdagent), so a Linux guest's
// clipboard held the text with a NUL at its end and \r before each line
// end: pasted into a terminal, a stray character; compared by a program,
// never equal. SPICE's own clients send no NUL and convert line ends to the
// agent's; QEMU's agent does neither. So the page builds the Provide message
// itself: the text as UTF-8 with \n line ends (what a textarea holds), no
// NUL. The message is otherwise noVNC's own (flags, then a zlib stream of
// a 4-byte length and the bytes), sent through its clientCutText.
import Deflator from '/novnc/core/deflator.js';

const ACTION_PROVIDE = 1 << 28;
const FORMAT_TEXT = 1;

export function provideClipboardAsIs(RFB) {
  RFB.messages.extendedClipboardProvide = (sock, formats, texts) => {
    const parts = [];
    let length = 0;
    formats.forEach((format, i) => {
      if (format !== FORMAT_TEXT) throw new Error('only text goes to the guest clipboard');
      const bytes = new TextEncoder().encode(texts[i].replace(/\r\n?/g, '\n'));
      const size = new Uint8Array([bytes.length >>> 24, (bytes.length >>> 16) & 0xff, (bytes.length >>> 8) & 0xff, bytes.length & 0xff]);
      parts.push(size, bytes);
      length += 4 + bytes.length;
    });
    const plain = new Uint8Array(length);
    let at = 0;
    for (const part of parts) {
      plain.set(part, at);
      at += part.length;
    }
    const deflated = new Deflator().deflate(plain);
    const message = new Uint8Array(4 + deflated.length);
    message.set([ACTION_PROVIDE >>> 24, 0, 0, formats.reduce((flags, format) => flags | format, 0)]);
    message.set(deflated, 4);
    RFB.messages.clientCutText(sock, message, true);
  };
}
