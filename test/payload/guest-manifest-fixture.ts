// A valid guest manifest as raw JSON data, for tests that vary one field.
export const validManifest = {
  schemaVersion: 1,
  name: 'default',
  kernel: 'vmlinuz',
  initrd: 'initrd.img',
  cmdline: 'console=ttyS0',
  memory: { minimumMiB: 128, recommendedMiB: 256 },
  cpus: { minimum: 1, recommended: 2 },
  devices: { console: 'serial', agent: 'virtio-serial', network: 'none' },
};
