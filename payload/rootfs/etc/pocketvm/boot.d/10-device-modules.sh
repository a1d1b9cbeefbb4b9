# Drivers for virtio devices the machine actually has: a block device (the
# personal disk, with ext4) and a network card. Shipped always, loaded only here.
. /lib/pocketvm/lib.sh
has_virtio_device 0x0002 && load_modules blk
has_virtio_device 0x0001 && load_modules net
exit 0
