# Sourced by /init in the initramfs when the command line says
# pocketvm.root=SERIAL: an image guest (docs/images.md). The system is the
# virtio disk with that serial, on virtio-blk (the stick, libvirt, QEMU) or on
# virtio-scsi (Proxmox's default controller, src/images/hypervisor-targets.ts;
# QEMU gives a scsi-hd's serial as its VPD page 0x80) (the user's encrypted overlay over the read-only
# base, src/session/system-disk.ts): mount it, give back what the initramfs
# mounted, and start the image's own init (pocketvm.init, /sbin/init when
# absent) on it. This kernel's modules stay loaded; the image brings the same
# modules and pocketvm's services for everything else. Never returns: a
# system that cannot be mounted powers the guest off, so the launcher reports
# the boot failed instead of running the initramfs as if it were the system.
root_serial=$(cmdline_value pocketvm.root)
root_init=$(cmdline_value pocketvm.init) || root_init=/sbin/init

root_failed() {
	log "cannot start the system on disk $root_serial: $*"
	sync
	poweroff -f
	while :; do sleep 3600; done
}

load_modules blk
# Virtio device id 8: a virtio-scsi controller; its modules only when there is one.
has_virtio_device 0x0008 && load_modules scsi
root_dev=
i=0
while [ $i -lt 500 ]; do
	for serial in /sys/block/vd*/serial; do
		[ -r "$serial" ] || continue
		read -r s <"$serial"
		if [ "$s" = "$root_serial" ]; then
			root_dev=${serial%/serial}
			root_dev=/dev/${root_dev##*/}
		fi
	done
	for serial in /sys/block/sd*/device/vpd_pg80; do
		[ -r "$serial" ] || continue
		# 4 header bytes, then the serial as given (no newline).
		s=$(tail -c +5 "$serial")
		if [ "$s" = "$root_serial" ]; then
			root_dev=${serial%/device/vpd_pg80}
			root_dev=/dev/${root_dev##*/}
		fi
	done
	[ -n "$root_dev" ] && [ -b "$root_dev" ] && break
	root_dev=
	i=$((i + 1))
	sleep 0.02
done
[ -n "$root_dev" ] || root_failed "no such disk"
mkdir -p /newroot
mount -t ext4 -o rw,noatime "$root_dev" /newroot || root_failed "mount failed"
# The init as the new root sees it: an absolute symlink (merged-/usr Debian's
# /sbin/init -> /lib/systemd/systemd) points into the image, not into the
# initramfs, so follow it under /newroot (relative links, including /sbin ->
# usr/sbin, the kernel follows inside /newroot itself).
init_path=$root_init
hops=0
while [ -L "/newroot$init_path" ] && [ $hops -lt 40 ]; do
	link=$(readlink "/newroot$init_path")
	case $link in
	/*) init_path=$link ;;
	*) init_path=${init_path%/*}/$link ;;
	esac
	hops=$((hops + 1))
done
[ -f "/newroot$init_path" ] && [ -x "/newroot$init_path" ] || root_failed "no $root_init in it"
trace "system disk mounted"
# The image's init mounts the kernel file systems itself, as on any boot.
umount /dev/pts /run /tmp /sys 2>/dev/null
umount /dev 2>/dev/null
umount /proc 2>/dev/null
exec switch_root /newroot "$root_init"
