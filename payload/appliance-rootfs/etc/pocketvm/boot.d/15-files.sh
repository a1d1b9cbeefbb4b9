# The helper appliance (docs/files.md): the sources a person opens arrive
# hot-plugged on virtio-scsi, so its driver and every file-system,
# device-mapper and md module are loaded on every boot, before the state is
# saved, so a resumed appliance pays for none of it.
. /lib/pocketvm/lib.sh
load_modules files
mkdir -p /run/files /mnt/files
[ -e /dev/fuse ] || mknod -m 0666 /dev/fuse c 10 229
exit 0
