// The largest 9P message between the launcher and the guest, in one place.
// C and shell cannot import it, so the guest's kernel module
// (payload/kmod/9pnet_pocketvm: PVM_MAX_MSIZE) and its mount
// (payload/rootfs/etc/pocketvm/boot.d/40-namespace.sh: msize=) repeat the
// number, and test/ninep/msize.test.ts fails when they say another.

/**
 * The namespace's msize: 1 MiB of data per Tread/Twrite plus a page for
 * its header. A program's 1 MiB read is then one round trip, not two (a
 * round trip through virtio-net and QEMU costs about as much as placing
 * 512 KiB). The page is there because the 9P client reads at most
 * msize - 24 bytes per Tread: at exactly 1 MiB each 1 MiB read took a second
 * round trip for its last 24 bytes.
 */
export const NAMESPACE_MSIZE = 1024 * 1024 + 4096;
