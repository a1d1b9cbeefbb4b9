// What the desktop guest (images/desktop/) shows, shared by its image build,
// the tests and the benchmarks: one constant each, so a test that looks for
// the wallpaper or waits for the session cannot drift from what the image
// does. The image carries them as images/desktop/rootfs/etc/pocketvm/
// desktop.conf, which test/payload/desktop-guest.test.ts holds equal to
// desktopConf() (docs/desktop.md, "What the session does").

/** The desktop's solid wallpaper colour (the root window and pcmanfm's desktop). */
export const DESKTOP_WALLPAPER = { hex: '#3a6ea5', rgb: [0x3a, 0x6e, 0xa5] } as const;

/**
 * Said on the console once the desktop (the wallpaper window) and the
 * terminal window are mapped: "session ready", the end of a desktop boot.
 */
export const DESKTOP_READY_MARKER = 'POCKETVM_DESKTOP_READY';

/** /etc/pocketvm/desktop.conf: the constants above as shell variables for the session's scripts. */
export function desktopConf(): string {
  return [
    '# The constants of src/payload/desktop-guest.ts (desktopConf(); a test keeps them equal), read by usr/lib/pocketvm/*.',
    `WALLPAPER='${DESKTOP_WALLPAPER.hex}'`,
    `READY_MARKER='${DESKTOP_READY_MARKER}'`,
    '',
  ].join('\n');
}
